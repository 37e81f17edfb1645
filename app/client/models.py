"""What the client returns: the service's JSON as typed, read-only records.

Unknown members are kept (``extra="allow"``), so a newer service's additions are reachable as
attributes and a client never breaks because the service grew.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

ThreadStatus = Literal["queued", "running", "interrupted", "completed", "failed", "cancelled"]
InterruptStatus = Literal["pending", "answered", "expired", "cancelled"]

#: Statuses in which nothing runs until someone acts: what `wait` waits for.
SETTLED: frozenset[str] = frozenset({"interrupted", "completed", "failed", "cancelled"})


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class PendingInterrupt(_Record):
    """A question a thread waits on (inside `Thread.interrupts`)."""

    id: str
    value: Any = None
    node: str
    created_at: datetime
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    expires_at: datetime | None = None


class Thread(_Record):
    """A thread: its status, state values, next nodes and pending interrupts."""

    thread_id: str
    graph: str
    status: ThreadStatus | str
    values: Any = None
    next: list[str] = Field(default_factory=list)
    interrupts: list[PendingInterrupt] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def settled(self) -> bool:
        """Nothing runs until someone acts (interrupted, completed, failed or cancelled)."""
        return self.status in SETTLED


class Interrupt(_Record):
    """A row of the inbox; once answered, also who answered, when, and the answer."""

    id: str
    thread_id: str
    graph: str
    node: str
    value: Any = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    created_at: datetime
    expires_at: datetime | None = None
    status: InterruptStatus | str
    answer: Any = None
    answered_by: str | None = None
    answered_at: datetime | None = None


class Checkpoint(_Record):
    """One entry of a thread's history."""

    checkpoint_id: str
    parent_id: str | None = None
    step: int
    source: str
    created_at: str
    values: Any = None
    next: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    interrupts: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class Graph(_Record):
    """A hosted graph: nodes, edges and a Mermaid drawing."""

    name: str
    nodes: list[str] = Field(default_factory=list)
    edges: list[dict[str, Any]] = Field(default_factory=list)
    mermaid: str = ""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next (None: last)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """One Server-Sent Event: ``event`` is its type (``interrupt.created``...), ``data`` its JSON."""

    id: str | None
    event: str
    data: Any
