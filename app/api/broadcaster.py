"""One event feed per API process, fanned out to its SSE subscribers.

The broadcaster follows the event log with a cursor (`app.services.event_feed`) and hands each
new event to the subscribers it concerns. It wakes on PostgreSQL NOTIFY ``hitl_events`` (so an
event written by a worker or API process on another machine arrives at once) and also polls: a
notification lost while reconnecting, or an event held back behind a transaction still in flight,
is picked up by the next look. On SQLite it polls (cheaply, and only while someone listens),
which also sees events of other processes.

Subscribers replay what they missed from the database themselves, then take events from their
queue, dropping any at or before their own cursor; a subscriber too slow to keep up is marked
``lagged`` and replays again from the database, so it never loses an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.listen import PgListener
from app.errors import UnavailableError
from app.queue.listener import asyncpg_dsn
from app.services.event_feed import latest_cursor, read_events
from app.services.event_interest import ListenerLease
from app.services.events import EVENTS_CHANNEL, EventCursor, StoredEvent

__all__ = ["EventBroadcaster", "Subscription"]

logger = logging.getLogger(__name__)

_PAGE = 500


class Subscription:
    """One SSE client's queue of live events (one thread's, or all; one tenant's if set)."""

    def __init__(self, thread_id: str | None, tenant: str | None, maxsize: int) -> None:
        self.thread_id = thread_id
        self.tenant = tenant
        self.queue: asyncio.Queue[StoredEvent] = asyncio.Queue(maxsize)
        #: Events were dropped (the client is slow): replay from the database.
        self.lagged = False

    def offer(self, event: StoredEvent) -> None:
        if self.thread_id is not None and event.thread_id != self.thread_id:
            return
        if self.tenant is not None and event.tenant != self.tenant:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    def drain(self) -> None:
        """Forget queued events (before a replay, which reads them again)."""
        self.lagged = False
        while not self.queue.empty():
            self.queue.get_nowait()


class EventBroadcaster:
    """Started lazily by the first subscriber; `stop` it when the application shuts down."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        poll_seconds: float | None = None,
        max_hold_seconds: float = 5.0,
        queue_size: int = 1000,
        listen: bool = True,
        linger_seconds: float = 60.0,
    ) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        self.listen = listen and self.pg
        # On PostgreSQL NOTIFY does the waking; the poll is the safety net.
        self.poll_seconds = poll_seconds or (2.0 if self.listen else 0.2)
        self.max_hold_seconds = max_hold_seconds
        self.queue_size = queue_size
        self.cursor = EventCursor()
        #: Transactions left open so long that readers stopped waiting for them.
        self.ignore_tx: set[int] = set()
        self._held: tuple[int, float] | None = None
        self._subscribers: set[Subscription] = set()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: PgListener | None = None
        #: While subscribers exist (and `linger_seconds` after), writers notify (`event_interest`).
        self._lease = ListenerLease(engine, "event-stream", self.wake) if self.listen else None
        self.linger_seconds = linger_seconds
        self._idle_since: float | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def subscribe(
        self, *, thread_id: str | None = None, tenant: str | None = None
    ) -> Subscription:
        """A queue of live events from now on (the caller replays what came before)."""
        self._start()
        if self._lease is not None:
            self._lease.hold()
        async with self._lock:
            if not self._subscribers:  # idle until now: the cursor is stale, start from now
                async with self.engine.connect() as conn:
                    self.cursor = await latest_cursor(conn, ignore_tx=self.ignore_tx)
            subscription = Subscription(thread_id, tenant, self.queue_size)
            self._subscribers.add(subscription)
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def wake(self) -> None:
        self._wake.set()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="hitl-event-broadcaster")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._subscribers.clear()
        if self._lease is not None:
            await self._lease.close()

    async def _run(self) -> None:
        listener_task: asyncio.Task[None] | None = None
        if self.listen:
            self._listener = PgListener(
                asyncpg_dsn(self.engine.url), EVENTS_CHANNEL, lambda _payload: self.wake()
            )
            listener_task = asyncio.create_task(self._listener.run(), name="hitl-events-listen")
        delay = self.poll_seconds
        held_delay = 0.01
        failures = 0
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                self._wake.clear()
                if not self._subscribers:
                    delay = self.poll_seconds
                    self._release_when_idle()
                    continue
                self._idle_since = None
                try:
                    held = await self._pump()
                except UnavailableError as exc:
                    failures += 1
                    if failures & (failures - 1) == 0:
                        logger.warning("event feed: database unavailable (%s); retrying", exc)
                    delay = min(0.25 * 2**failures, 5.0)
                    continue
                except Exception:
                    logger.exception("event feed: unexpected error; retrying")
                    delay = 1.0
                    continue
                failures = 0
                if held:  # the transaction in the way usually commits within milliseconds
                    delay, held_delay = held_delay, min(held_delay * 2, 0.5)
                else:
                    delay, held_delay = self.poll_seconds, 0.01
        finally:
            if listener_task is not None:
                listener_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener_task

    async def _pump(self) -> bool:
        """Publish every final event after the cursor; True when some are held back."""
        async with self._lock:
            while True:
                async with self.engine.connect() as conn:
                    batch = await read_events(
                        conn, self.cursor, limit=_PAGE, ignore_tx=self.ignore_tx
                    )
                for event in batch.events:
                    self.cursor = event.cursor
                    for subscription in self._targets():
                        subscription.offer(event)
                if batch.held_by is not None:
                    self._note_held(batch.held_by)
                    return True
                self._held = None
                if len(batch.events) < _PAGE:
                    return False

    def _release_when_idle(self) -> None:
        """No subscriber for `linger_seconds`: writers need not notify for this process."""
        if self._lease is None or not self._lease.held:
            return
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= self.linger_seconds:
            self._lease.release()
            self._idle_since = None

    def _targets(self) -> Iterator[Subscription]:
        yield from list(self._subscribers)

    def _note_held(self, tx: int) -> None:
        """Stop waiting for a transaction that has been open longer than ``max_hold_seconds``."""
        now = time.monotonic()
        if self._held is None or self._held[0] != tx:
            self._held = (tx, now)
            return
        if now - self._held[1] >= self.max_hold_seconds:
            logger.warning(
                "event feed: transaction %s has been open for %.0fs; no longer waiting for it",
                tx,
                now - self._held[1],
            )
            if len(self.ignore_tx) > 1000:
                self.ignore_tx.clear()
            self.ignore_tx.add(tx)
            self._held = None
            self._wake.set()
