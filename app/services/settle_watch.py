"""Wakes ``?wait=true`` waiters as soon as their thread's run settles (PostgreSQL).

A worker records ``thread.completed``, ``thread.failed`` or ``interrupt.created`` in the
transaction that settles a run, and PostgreSQL sends NOTIFY ``hitl_events`` at its commit,
whichever machine the worker runs on. One watch per process LISTENs on that channel (a dedicated
connection, opened on the first wait and closed after ``idle_seconds`` without waiters or when
the engine is disposed). On each notification it wakes the waiters, who read their thread
themselves: all of them when they are few (one round trip sooner). Otherwise one look per
notification, however many wait, reads the threads that have settled (with their pending
questions) and hands each waiter its thread, so it reads nothing itself.

Why not the SSE broadcaster, which follows the same channel: it reads the event log, with the
transaction snapshot, after every subscription and every event, and on a small machine that work
slowed the very run a waiter waits for as much as waking on the event saved. A notification
lost while the connection is down, or a run that settles without an event, is caught by the
waiter's own polling (`app.services.waiting`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.listen import PgListener
from app.db.tables import RunRow, ThreadRow
from app.queue.listener import asyncpg_dsn
from app.services.event_interest import ListenerLease
from app.services.events import EVENTS_CHANNEL
from app.services.thread_rows import THREAD_COLUMNS, load_threads
from app.services.transactions import read_tx
from app.services.views import SETTLED, Thread, ThreadStatus

__all__ = ["SettleWatch", "Watch"]

logger = logging.getLogger(__name__)

DONE = sorted({*SETTLED, ThreadStatus.CANCELLED})
ACTIVE_RUN = ("queued", "running")
#: Up to this many waiters, a notification wakes them all rather than looking first.
WAKE_ALL_UP_TO = 4

#: Which of these threads have settled (a settled status and no run queued or running), as
#: the waiters answer them.
SETTLED_AMONG = sa.select(*THREAD_COLUMNS, ThreadRow.tenant).where(
    ThreadRow.thread_id.in_(sa.bindparam("ids", expanding=True)),
    ThreadRow.status.in_(DONE),
    ~sa.exists().where(RunRow.thread_id == ThreadRow.thread_id, RunRow.status.in_(ACTIVE_RUN)),
)


class Watch:
    """One waiter's `SettleSignal`: fires when a look finds its thread settled.

    ``settled`` is then the thread as the look read it (None when the waiter must look).
    """

    def __init__(
        self, thread_id: str, tenant: str | None = None, owner: SettleWatch | None = None
    ) -> None:
        self.thread_id = thread_id
        self.tenant = tenant
        self.owner = owner
        self.fired = asyncio.Event()
        self.settled: Thread | None = None

    @property
    def listening(self) -> bool:
        return self.owner is not None and self.owner.listening

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.fired.wait()
        self.fired.clear()


class SettleWatch:
    """The waiters of one process (one database), woken by NOTIFY ``hitl_events``."""

    def __init__(self, engine: AsyncEngine, *, idle_seconds: float = 60.0) -> None:
        self.engine = engine
        self.idle_seconds = idle_seconds
        self._watches: dict[str, set[Watch]] = {}
        self._listener: PgListener | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._look_task: asyncio.Task[None] | None = None
        self._look_again = False
        self._idle: asyncio.TimerHandle | None = None
        #: Writers notify only while some process says it listens (`event_interest`).
        self._lease = ListenerLease(engine, "settle-watch", lambda: self._notified(None))
        sa.event.listen(engine.sync_engine, "engine_disposed", self._on_disposed)

    @property
    def listening(self) -> bool:
        return (
            self._listener is not None and self._listener.listening.is_set() and self._lease.ready
        )

    @contextlib.contextmanager
    def watch(self, thread_id: str, tenant: str | None = None) -> Iterator[Watch]:
        """A signal for ``thread_id`` (of ``tenant``, if any) while the block runs."""
        self._start()
        watch = Watch(thread_id, tenant, self)
        self._watches.setdefault(thread_id, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._watches.get(thread_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[thread_id]
            if not self._watches:
                self._schedule_idle_stop()

    def _start(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._listen_task is None or self._listen_task.done():
            self._listener = PgListener(
                asyncpg_dsn(self.engine.url), EVENTS_CHANNEL, self._notified
            )
            self._listen_task = asyncio.create_task(
                self._listener.run(), name="hitl-settle-watch-listen"
            )
        self._lease.hold()

    def _schedule_idle_stop(self) -> None:
        if self._idle is None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.idle_seconds, self._stop_if_idle)

    def _stop_if_idle(self) -> None:
        self._idle = None
        if not self._watches:
            self.stop()

    def stop(self, *, disposed: bool = False) -> None:
        """Stop listening (the next wait starts again)."""
        self._lease.release(delete=not disposed)
        for task in (self._listen_task, self._look_task):
            if task is not None:
                task.cancel()
        self._listen_task = self._look_task = None
        self._listener = None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    async def close(self) -> None:
        """Stop, and take this process's listener row away before the engine is disposed."""
        await self._lease.close()  # first: `stop` would only start the row's deletion
        self.stop()

    def _on_disposed(self, _engine: Any) -> None:
        self.stop(disposed=True)

    def _notified(self, _payload: str | None) -> None:
        """Something was recorded (or the connection is new): look, once per burst."""
        if not self._watches:
            return
        if sum(len(w) for w in self._watches.values()) <= WAKE_ALL_UP_TO:
            for watches in self._watches.values():
                for watch in watches:
                    watch.fired.set()
            return
        if self._look_task is not None and not self._look_task.done():
            self._look_again = True
            return
        self._look_task = asyncio.create_task(self._look(), name="hitl-settle-watch-look")

    async def _look(self) -> None:
        while True:
            self._look_again = False
            # Only the watches that exist before the read may take what it finds: a watch
            # added during the read belongs to a request that queued a run after the read's
            # snapshot, so the thread read may predate that run (a stale "settled").
            watching = {tid: list(watches) for tid, watches in self._watches.items()}
            ids = list(watching)
            if not ids:
                return
            try:
                async with read_tx(self.engine) as conn:
                    rows = (await conn.execute(SETTLED_AMONG, {"ids": ids})).all()
                    threads = await load_threads(conn, rows)
            except Exception as exc:  # the waiters poll meanwhile
                logger.warning("settle watch: cannot look (%s: %s)", type(exc).__name__, exc)
                return
            for row, thread in zip(rows, threads, strict=True):
                for watch in watching.get(row.thread_id, ()):
                    if watch.tenant is None or watch.tenant == row.tenant:
                        watch.settled = thread
                    watch.fired.set()
            if not self._look_again:
                return
