"""Read-side records the use cases return (frozen dataclasses, never ORM rows).

The API turns these into its response models; the idempotency store keeps them as JSON and
rebuilds them (`thread_from_json`), so a replayed response is byte-for-byte the first one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import orjson

T = TypeVar("T")


class ThreadStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses in which no run is active: what ``?wait=true`` waits for.
SETTLED = frozenset({ThreadStatus.INTERRUPTED, ThreadStatus.COMPLETED, ThreadStatus.FAILED})
#: Statuses from which nothing more will happen.
TERMINAL = frozenset({ThreadStatus.COMPLETED, ThreadStatus.FAILED, ThreadStatus.CANCELLED})


class InterruptStatus(StrEnum):
    PENDING = "pending"
    ANSWERED = "answered"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class PendingInterrupt:
    """A question a thread waits on, as shown inside the Thread."""

    id: str
    value: Any
    node: str
    created_at: datetime
    schema: dict[str, Any] | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Thread:
    """A thread as the API shows it."""

    thread_id: str
    graph: str
    status: str
    values: Any
    next: list[str]
    interrupts: list[PendingInterrupt]
    metadata: dict[str, Any]
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class InterruptItem:
    """One row of the inbox; the answer fields are filled once it was answered."""

    id: str
    thread_id: str
    graph: str
    node: str
    value: Any
    schema: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime | None
    status: str
    answer: Any = None
    answered_by: str | None = None
    answered_at: datetime | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class CheckpointItem:
    """One entry of a thread's history."""

    checkpoint_id: str
    parent_id: str | None
    step: int
    source: str
    created_at: str
    values: Any
    next: list[str]
    metadata: dict[str, Any]
    interrupts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, with the cursor of the next one (None on the last page)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a write use case did: the resulting record and the HTTP-agnostic kind of success."""

    value: T
    created: bool = False
    replayed: bool = False
    status_code: int = 200


# --- JSON round trip (idempotent replays) -------------------------------------------------


def _ts(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def thread_to_json(thread: Thread) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(orjson.dumps(asdict(thread)))
    return data


def thread_from_json(data: dict[str, Any]) -> Thread:
    pending = [
        PendingInterrupt(
            id=i["id"],
            value=i["value"],
            node=i["node"],
            created_at=_ts(i["created_at"]),  # type: ignore[arg-type]
            schema=i.get("schema"),
            expires_at=_ts(i.get("expires_at")),
        )
        for i in data.get("interrupts", [])
    ]
    return Thread(
        thread_id=data["thread_id"],
        graph=data["graph"],
        status=data["status"],
        values=data.get("values"),
        next=list(data.get("next") or []),
        interrupts=pending,
        metadata=dict(data.get("metadata") or {}),
        error=data.get("error"),
        created_at=_ts(data["created_at"]),  # type: ignore[arg-type]
        updated_at=_ts(data["updated_at"]),  # type: ignore[arg-type]
    )
