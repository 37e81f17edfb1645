"""Thread use cases: start, read, list, wait, cancel, delete, history.

Every write is one short transaction that also queues the run it implies (``RunQueue.enqueue`` in
the caller's transaction), so a thread is never created without its first run, and a crash never
leaves half of a use case behind. Reads take a connection only for the query itself: waiting
(``?wait=true``) polls with sleeps in between, holding no connection while asleep.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.checkpoint.serde import encode as serde_encode
from app.db.tables import CheckpointRow, CheckpointWriteRow, InterruptRow, RunRow, ThreadRow, utcnow
from app.errors import ConflictError, InvalidInputError, ThreadBusyError, ThreadNotFoundError
from app.graphs.registry import GraphRegistry
from app.services import pagination
from app.services.events import EventLog, thread_cancelled
from app.services.history import load_history
from app.services.idempotency import IdempotencyKey
from app.services.transactions import read_tx, run_write
from app.services.views import (
    SETTLED,
    TERMINAL,
    CheckpointItem,
    InterruptStatus,
    Outcome,
    Page,
    PendingInterrupt,
    Thread,
    ThreadStatus,
    thread_from_json,
    thread_to_json,
)

METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
ACTIVE_RUN = ("queued", "running")


class RunQueuePort(Protocol):
    """What the use cases need from the run queue (``app.queue.RunQueue``)."""

    async def enqueue(self, conn: AsyncConnection, thread_id: str) -> Any: ...


class ThreadExistsError(ConflictError):
    """A thread with this id exists for another graph."""


#: What a Thread record is read from (the ORM attribute names, used through Core).
THREAD_COLUMNS = (
    ThreadRow.thread_id,
    ThreadRow.graph,
    ThreadRow.status,
    ThreadRow.values,
    ThreadRow.next,
    ThreadRow.metadata_.label("metadata_"),
    ThreadRow.error,
    ThreadRow.created_at,
    ThreadRow.updated_at,
)

# Pending interrupts of some threads, oldest first (the order they were asked in).
SELECT_PENDING = (
    sa.select(
        InterruptRow.id,
        InterruptRow.thread_id,
        InterruptRow.value,
        InterruptRow.node,
        InterruptRow.created_at,
        InterruptRow.schema,
        InterruptRow.expires_at,
    )
    .where(
        InterruptRow.thread_id.in_(sa.bindparam("thread_ids", expanding=True)),
        InterruptRow.status == InterruptStatus.PENDING.value,
    )
    .order_by(InterruptRow.created_at, InterruptRow.id)
)

# Is the thread settled? Its status and whether a run is still queued or running.
SELECT_PROGRESS = sa.select(
    ThreadRow.status,
    sa.exists()
    .where(RunRow.thread_id == ThreadRow.thread_id, RunRow.status.in_(ACTIVE_RUN))
    .label("active"),
).where(ThreadRow.thread_id == sa.bindparam("thread_id"))


def _insert(conn: AsyncConnection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


def stored_input(value: Any) -> Any:
    """The input as the worker reads it back: serde-tagged JSON (plain JSON stays as it is)."""
    return serde_encode(value)


async def load_threads(conn: AsyncConnection, rows: Sequence[Any]) -> list[Thread]:
    """Thread records for thread rows, with their pending interrupts (one extra query)."""
    if not rows:
        return []
    pending: dict[str, list[PendingInterrupt]] = {}
    result = await conn.execute(SELECT_PENDING, {"thread_ids": [r.thread_id for r in rows]})
    for i in result:
        pending.setdefault(i.thread_id, []).append(
            PendingInterrupt(
                id=i.id,
                value=i.value,
                node=i.node,
                created_at=i.created_at,
                schema=i.schema,
                expires_at=i.expires_at,
            )
        )
    return [
        Thread(
            thread_id=r.thread_id,
            graph=r.graph,
            status=r.status,
            values=r.values,
            next=list(r.next or []),
            interrupts=pending.get(r.thread_id, []),
            metadata=dict(r.metadata_ or {}),
            error=r.error,
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]


async def load_thread(conn: AsyncConnection, thread_id: str) -> Thread:
    row = (
        await conn.execute(sa.select(*THREAD_COLUMNS).where(ThreadRow.thread_id == thread_id))
    ).first()
    if row is None:
        raise ThreadNotFoundError(f"Thread {thread_id!r} does not exist.", thread_id=thread_id)
    (thread,) = await load_threads(conn, [row])
    return thread


def _metadata_filter(conn_dialect: str, key: str, value: str) -> sa.ColumnElement[bool]:
    """``metadata.<key>=value``: the string, or the JSON scalar it spells (``1``, ``true``)."""
    if not METADATA_KEY.match(key):
        raise InvalidInputError(
            "Metadata filter keys may use letters, digits, '_' and '-' (at most 64).", key=key
        )
    candidates: list[Any] = [value]
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = value
    if parsed is None or isinstance(parsed, bool | int | float):
        candidates.append(parsed)
    if conn_dialect == "postgresql":
        column = sa.type_coerce(ThreadRow.metadata_, JSONB)  # @> containment, GIN-indexed
        return sa.or_(*(column.contains({key: c}) for c in candidates))
    extracted = sa.func.json_extract(ThreadRow.metadata_, f'$."{key}"')
    kind = sa.func.json_type(ThreadRow.metadata_, f'$."{key}"')
    clauses = [sa.and_(kind == "text", extracted == value)]
    for c in candidates[1:]:
        if c is None:
            clauses.append(kind == "null")
        elif isinstance(c, bool):
            clauses.append(kind == ("true" if c else "false"))
        else:
            clauses.append(sa.and_(kind.in_(["integer", "real"]), extracted == c))
    return sa.or_(*clauses)


class ThreadService:
    """Thread use cases over one database and one set of hosted graphs."""

    def __init__(
        self,
        engine: AsyncEngine,
        registry: GraphRegistry,
        queue: RunQueuePort,
        *,
        wait_max_seconds: float = 30.0,
        events: EventLog | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.queue = queue
        self.events = events
        self.wait_max_seconds = wait_max_seconds
        self.dialect = engine.dialect.name

    async def start(
        self,
        graph: str,
        input: Any,
        *,
        thread_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome[Thread]:
        """Create a thread and queue its first run (201); an existing id is returned as is (200)."""
        self.registry.get(graph)  # unknown graph: 404 before anything is written
        request = {
            "graph": graph,
            "input": input,
            "thread_id": thread_id,
            "metadata": metadata,
            "webhook": webhook,
        }
        ikey = IdempotencyKey.build("POST /threads", idempotency_key, request)
        new_id = thread_id or str(uuid.uuid4())
        tagged_input = stored_input(input)

        async def effect(conn: AsyncConnection) -> Outcome[Thread]:
            inserted = (
                await conn.execute(
                    _insert(conn)(ThreadRow)
                    .values(
                        thread_id=new_id,
                        graph=graph,
                        status=ThreadStatus.QUEUED.value,
                        input=tagged_input,
                        next=[],
                        metadata_=dict(metadata or {}),
                        webhook=webhook,
                    )
                    .on_conflict_do_nothing(index_elements=["thread_id"])
                    .returning(ThreadRow.thread_id)
                )
            ).first()
            if inserted is not None:
                await self.queue.enqueue(
                    conn, new_id
                )  # same transaction: never a thread without its run
            thread = await load_thread(conn, new_id)
            if inserted is None and thread.graph != graph:
                raise ThreadExistsError(
                    f"Thread {new_id!r} exists and runs the graph {thread.graph!r}, not {graph!r}.",
                    thread_id=new_id,
                    graph=thread.graph,
                )
            created = inserted is not None
            return Outcome(thread, created=created, status_code=201 if created else 200)

        return await run_write(
            self.engine, effect, ikey, to_json=thread_to_json, from_json=thread_from_json
        )

    async def get(self, thread_id: str) -> Thread:
        async with read_tx(self.engine) as conn:
            return await load_thread(conn, thread_id)

    async def list(
        self,
        *,
        status: str | None = None,
        graph: str | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Thread]:
        """Threads newest first, filtered; ``status=interrupted`` is the humans' to-do list."""
        pagination.check_limit(limit)
        conditions: list[sa.ColumnElement[bool]] = []
        if status is not None:
            conditions.append(ThreadRow.status == status)
        if graph is not None:
            conditions.append(ThreadRow.graph == graph)
        for key, value in (metadata or {}).items():
            conditions.append(_metadata_filter(self.dialect, key, value))
        if cursor:
            conditions.append(
                pagination.after_cursor(
                    ThreadRow.created_at, ThreadRow.thread_id, cursor, self.dialect
                )
            )
        query = (
            sa.select(
                *THREAD_COLUMNS,
                pagination.sort_value(ThreadRow.created_at, self.dialect).label("position"),
            )
            .where(*conditions)
            .order_by(ThreadRow.created_at.desc(), ThreadRow.thread_id.desc())
            .limit(limit + 1)
        )
        async with read_tx(self.engine) as conn:
            rows = (await conn.execute(query)).all()
            threads = await load_threads(conn, rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = pagination.encode_cursor(last.position, last.thread_id)
        return Page(threads, next_cursor)

    async def wait(self, thread_id: str, seconds: float | None = None) -> Thread:
        """The thread once no run of it is queued or running, or as it is when time runs out.

        Polls with growing sleeps (2 ms, x1.5, up to 50 ms) and holds no connection while asleep.
        """
        bound = self.wait_max_seconds if seconds is None else min(seconds, self.wait_max_seconds)
        deadline = time.monotonic() + max(bound, 0.0)
        delay = 0.002
        while True:
            async with read_tx(self.engine) as conn:
                row = (await conn.execute(SELECT_PROGRESS, {"thread_id": thread_id})).first()
                if row is None:
                    raise ThreadNotFoundError(
                        f"Thread {thread_id!r} does not exist.", thread_id=thread_id
                    )
                settled = not row.active and row.status in {*SETTLED, ThreadStatus.CANCELLED}
                if settled or time.monotonic() >= deadline:
                    return await load_thread(conn, thread_id)
            await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0.0)))
            delay = min(delay * 1.5, 0.05)

    async def cancel(self, thread_id: str) -> Thread:
        """Stop a thread: pending questions are withdrawn and a queued run is dropped.

        A run already executing finishes its step; the worker then sees the cancelled thread.
        """

        async def effect(conn: AsyncConnection) -> Outcome[Thread]:
            thread = await load_thread(conn, thread_id)
            if thread.status in TERMINAL:
                raise ThreadBusyError(
                    f"Thread {thread_id!r} is already {thread.status}; it cannot be cancelled.",
                    thread_id=thread_id,
                    status=thread.status,
                )
            row = (
                await conn.execute(
                    sa.update(ThreadRow)
                    .where(ThreadRow.thread_id == thread_id)
                    .values(status=ThreadStatus.CANCELLED.value, updated_at=utcnow())
                    .returning(ThreadRow.thread_id, ThreadRow.graph, ThreadRow.tenant)
                )
            ).one()
            withdrawn = (
                await conn.execute(
                    sa.update(InterruptRow)
                    .where(
                        InterruptRow.thread_id == thread_id,
                        InterruptRow.status == InterruptStatus.PENDING.value,
                    )
                    .values(status=InterruptStatus.CANCELLED.value)
                    .returning(InterruptRow.id)
                )
            ).scalars()
            if self.events is not None:
                event = thread_cancelled(
                    row._mapping, interrupt_ids=sorted(withdrawn), public_url=self.events.public_url
                )
                await self.events.record(conn, [event])  # the outbox, in this transaction
            await conn.execute(
                sa.update(RunRow)
                .where(RunRow.thread_id == thread_id, RunRow.status == "queued")
                .values(status="cancelled", finished_at=utcnow())
            )
            return Outcome(await load_thread(conn, thread_id))

        return (
            await run_write(
                self.engine, effect, None, to_json=thread_to_json, from_json=thread_from_json
            )
        ).value

    async def delete(self, thread_id: str) -> None:
        """Remove a thread with its runs, interrupts, checkpoints and writes."""

        async def effect(conn: AsyncConnection) -> Outcome[None]:
            gone = (
                await conn.execute(
                    sa.delete(ThreadRow)
                    .where(ThreadRow.thread_id == thread_id)
                    .returning(ThreadRow.thread_id)
                )
            ).first()
            if gone is None:
                raise ThreadNotFoundError(
                    f"Thread {thread_id!r} does not exist.", thread_id=thread_id
                )
            # runs and interrupts go by ON DELETE CASCADE; checkpoints have no FK (by design).
            await conn.execute(
                sa.delete(CheckpointWriteRow).where(CheckpointWriteRow.thread_id == thread_id)
            )
            await conn.execute(sa.delete(CheckpointRow).where(CheckpointRow.thread_id == thread_id))
            return Outcome(None, status_code=204)

        await run_write(self.engine, effect, None, to_json=lambda _: None, from_json=lambda _: None)

    async def history(
        self, thread_id: str, *, limit: int = 20, cursor: str | None = None
    ) -> Page[CheckpointItem]:
        """The thread's checkpoints, newest first; the cursor is a checkpoint id."""
        pagination.check_limit(limit)
        await self.get(thread_id)  # 404 for an unknown thread, not an empty history
        return await load_history(self.engine, thread_id, limit=limit, before=cursor)
