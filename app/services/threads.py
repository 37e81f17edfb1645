"""Thread use cases: start, read, list, wait, cancel, delete, history.

Every write is one short transaction that also queues the run it implies (``RunQueue.enqueue`` in
the caller's transaction), so a thread is never created without its first run, and a crash never
leaves half of a use case behind. Reads take a connection only for the query itself; waiting
(``?wait=true``, `app.services.waiting`) holds none while asleep.

Tenants: a service `scoped` to a tenant creates threads of that tenant and finds only those (any
other thread is "not found", so ids do not leak); the unscoped service (operators, workers) sees
every thread. Lists filter in SQL, on the ``(tenant, status, created_at)`` index.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.checkpoint.serde import encode as serde_encode
from app.db.driver import fetch_one
from app.db.tables import (
    JSON,
    CheckpointRow,
    CheckpointWriteRow,
    InterruptRow,
    RunRow,
    ThreadRow,
    utcnow,
)
from app.errors import ConflictError, ThreadBusyError, ThreadNotFoundError
from app.graphs.registry import GraphRegistry
from app.services import pagination
from app.services.events import EventLog, thread_cancelled
from app.services.history import load_history
from app.services.idempotency import IdempotencyKey
from app.services.local_runs import LocalRunner, RunHere
from app.services.settle_watch import SettleWatch
from app.services.thread_rows import (
    THREAD_COLUMNS,
    load_thread,
    load_threads,
    metadata_filter,
    tenant_filter,
    tenant_scope,
    thread_from_row,
)
from app.services.transactions import read_tx, run_write
from app.services.views import (
    TERMINAL,
    CheckpointItem,
    InterruptStatus,
    Outcome,
    Page,
    Thread,
    ThreadStatus,
    thread_from_json,
    thread_to_json,
)
from app.services.waiting import wait_until_settled


class RunQueuePort(Protocol):
    """What the use cases need from the run queue (``app.queue.RunQueue``)."""

    async def enqueue(self, conn: AsyncConnection, thread_id: str) -> Any: ...

    async def enqueue_claimed(
        self, conn: AsyncConnection, thread_id: str, *, worker_id: str, lease_seconds: float
    ) -> Any: ...

    async def start_claimed(
        self, thread: Mapping[str, Any], *, worker_id: str, lease_seconds: float
    ) -> Any: ...


class ThreadExistsError(ConflictError):
    """A thread with this id exists for another graph, or for another tenant."""


def _insert_thread(insert: Any) -> Any:
    """A new thread, or nothing when the id is taken; returns the new row's columns.

    Built once: a statement built per request costs its cache key at every execution.
    """
    values = {
        "thread_id": sa.bindparam("thread_id", type_=sa.Text),
        "tenant": sa.bindparam("tenant", type_=sa.Text),
        "graph": sa.bindparam("graph", type_=sa.Text),
        "status": ThreadStatus.QUEUED.value,
        "input": sa.bindparam("input", type_=JSON),
        "next": sa.bindparam("next", type_=JSON),
        "metadata": sa.bindparam("metadata", type_=JSON),
        "webhook": sa.bindparam("webhook", type_=sa.Text),
    }
    return (
        insert(ThreadRow.__table__)
        .values(values)
        .on_conflict_do_nothing(index_elements=["thread_id"])
        .returning(*THREAD_COLUMNS)
    )


INSERT_THREAD = {"postgresql": _insert_thread(pg_insert), "sqlite": _insert_thread(sqlite_insert)}


def stored_input(value: Any) -> Any:
    """The input as the worker reads it back: serde-tagged JSON (plain JSON stays as it is)."""
    return serde_encode(value)


async def _check_owner(conn: AsyncConnection, thread_id: str, tenant: str) -> None:
    """A tenant asked for an id that exists: fine if the thread is its own, a conflict otherwise
    (saying nothing about the other thread; ids are one namespace, so the id is taken)."""
    owner = (
        await conn.execute(sa.select(ThreadRow.tenant).where(ThreadRow.thread_id == thread_id))
    ).scalar_one()
    if owner != tenant:
        raise ThreadExistsError(
            f"The thread id {thread_id!r} is taken; choose another.", thread_id=thread_id
        )


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
        tenant: str | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.queue = queue
        self.events = events
        self.wait_max_seconds = wait_max_seconds
        self.dialect = engine.dialect.name
        #: The tenant this service acts for (None: every tenant; new threads have none).
        self.tenant = tenant
        #: Wakes waits when runs settle (PostgreSQL; SQLite waits poll). Shared by scoped copies.
        self.settle_watch = SettleWatch(engine) if self.dialect == "postgresql" else None
        #: This process's worker, which runs the runs of waiting requests itself (`run_here`).
        self.local_runner: LocalRunner | None = None

    def run_here(self, wait: bool) -> RunHere:
        """For a request that will wait: a slot of this process's worker, if one is free."""
        return RunHere.reserve(self.local_runner, wait)

    def scoped(self, tenant: str | None) -> ThreadService:
        """This service acting for ``tenant`` (a cheap copy sharing engine, queue and graphs)."""
        clone = copy.copy(self)
        clone.tenant = tenant
        return clone

    async def start(
        self,
        graph: str,
        input: Any,
        *,
        thread_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        webhook: str | None = None,
        idempotency_key: str | None = None,
        here: RunHere | None = None,
    ) -> Outcome[Thread]:
        """Create a thread and queue its first run (201); an existing id is returned as is (200).

        ``here``: the run is claimed for this process's worker (`settle` then executes it).
        """
        self.registry.get(graph)  # unknown graph: 404 before anything is written
        if here is not None:
            await here.secure_slot()
        request = {
            "graph": graph,
            "input": input,
            "thread_id": thread_id,
            "metadata": metadata,
            "webhook": webhook,
        }
        ikey = IdempotencyKey.build(
            tenant_scope("POST /threads", self.tenant), idempotency_key, request
        )
        new_id = thread_id or str(uuid.uuid4())
        tenant = self.tenant
        params = {
            "thread_id": new_id,
            "tenant": tenant,
            "graph": graph,
            "input": stored_input(input),
            "next": [],
            "metadata": dict(metadata or {}),
            "webhook": webhook,
        }
        if here is not None and ikey is None:
            # A waiting request with a slot here: thread and claimed run in one round trip.
            row = await here.start_thread(self.queue, params)
            if row is not None:
                return Outcome(thread_from_row(row, []), created=True, status_code=201)

        async def effect(conn: AsyncConnection) -> Outcome[Thread]:
            inserted = await fetch_one(conn, INSERT_THREAD[conn.dialect.name], params)
            if inserted is not None:
                # Same transaction: never a thread without its run.
                if here is not None:
                    await here.enqueue(conn, self.queue, new_id)
                else:
                    await self.queue.enqueue(conn, new_id)
                thread = thread_from_row(inserted, [])  # nothing asked yet
            else:
                if tenant is not None:
                    await _check_owner(conn, new_id, tenant)
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
            self.engine, effect, ikey, to_json=thread_to_json, from_json=thread_from_json, here=here
        )

    async def get(self, thread_id: str) -> Thread:
        async with read_tx(self.engine) as conn:
            return await load_thread(conn, thread_id, tenant=self.tenant)

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
        conditions = tenant_filter(ThreadRow.tenant, self.tenant)
        if status is not None:
            conditions.append(ThreadRow.status == status)
        if graph is not None:
            conditions.append(ThreadRow.graph == graph)
        for key, value in (metadata or {}).items():
            conditions.append(metadata_filter(self.dialect, key, value))
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

    async def settle(self, thread_id: str, here: RunHere | None, *, look_first: bool) -> Thread:
        """The thread once its run settled: executed here when ``here`` claimed it, else `wait`."""
        if here is not None:
            outcome = await here.execute()
            if outcome is not None and outcome.thread_status != ThreadStatus.QUEUED.value:
                # Read in the settling transaction; without it (cancelled), read it now.
                return outcome.thread or await self.get(thread_id)
        return await self.wait(thread_id, look_first=look_first)

    async def wait(
        self,
        thread_id: str,
        seconds: float | None = None,
        *,
        look_first: bool = True,
    ) -> Thread:
        """The thread once no run of it is queued or running, or as it is when time runs out.

        On PostgreSQL the settle watch wakes the wait when the run settles; the thread is
        polled as well. ``look_first=False``: the caller has just queued the run itself, so
        the first look waits for the watch (`app.services.waiting`).
        """
        bound = self.wait_max_seconds if seconds is None else min(seconds, self.wait_max_seconds)
        if self.settle_watch is None:
            return await wait_until_settled(
                self.engine, thread_id, tenant=self.tenant, seconds=bound, signal=None
            )
        with self.settle_watch.watch(thread_id, self.tenant) as signal:
            return await wait_until_settled(
                self.engine,
                thread_id,
                tenant=self.tenant,
                seconds=bound,
                signal=signal,
                look_first=look_first,
            )

    async def cancel(self, thread_id: str) -> Thread:
        """Stop a thread: pending questions are withdrawn and a queued run is dropped.

        A run already executing finishes its step; the worker then sees the cancelled thread.
        """

        async def effect(conn: AsyncConnection) -> Outcome[Thread]:
            thread = await load_thread(conn, thread_id, tenant=self.tenant)
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
            # A queued run will not run: gone (a running one ends when it settles).
            await conn.execute(
                sa.delete(RunRow).where(RunRow.thread_id == thread_id, RunRow.status == "queued")
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
                    .where(
                        ThreadRow.thread_id == thread_id,
                        *tenant_filter(ThreadRow.tenant, self.tenant),
                    )
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
        await self.get(thread_id)  # 404 for an unknown (or another tenant's) thread
        return await load_history(self.engine, thread_id, limit=limit, before=cursor)
