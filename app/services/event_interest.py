"""A process's claim that it listens for every event, so writers send ``NOTIFY hitl_events``.

Writers of events notify only when the events created webhook deliveries or a row of
``event_listeners`` is live (`app.services.events`): a notification nobody hears still takes a
database-wide lock through the commit and wakes every listening connection of the database.
The settle watch (a ``?wait=true`` on a run executed elsewhere) and the event broadcaster (an
open stream) each hold a `ListenerLease` while they need notifications.

A writer whose statement began before the lease's row was committed does not see it and may
commit after the holder's first look: the holder is told to look again once the row is in and
again `RECHECK_SECONDS` later, far longer than an event-writing statement usually takes (one that
takes longer still is found by the waiters' own polling, as a lost notification would be). Until
the row is in, `ready` is false and waiters poll as they do without a feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.services.transactions import write_tx

__all__ = ["RECHECK_SECONDS", "ListenerLease"]

logger = logging.getLogger(__name__)

#: After the row is in, the holder looks once more this much later (see the module docstring).
RECHECK_SECONDS = 0.5

#: Insert or extend this listener's row, from the database clock.
_HOLD = sa.text(
    """
    INSERT INTO event_listeners (listener_id, purpose, expires_at)
    VALUES (:listener_id, :purpose, now() + make_interval(secs => :ttl))
    ON CONFLICT (listener_id) DO UPDATE SET expires_at = excluded.expires_at
    """
)
#: Rows of listeners that died without deleting theirs (kept small for the writers' check).
_FORGET_EXPIRED = sa.text(
    "DELETE FROM event_listeners WHERE expires_at < now() - interval '1 minute'"
)
_DROP = sa.text("DELETE FROM event_listeners WHERE listener_id = :listener_id")


class _Hold:
    """One stretch of holding: its own row id, so a row deleted late by the stretch before
    (a release followed at once by a hold) is never the current one."""

    __slots__ = ("delete", "listener_id", "ready", "task")

    def __init__(self, purpose: str) -> None:
        self.listener_id = f"{purpose}-{uuid.uuid4().hex}"
        self.ready = False
        self.delete = True
        self.task: asyncio.Task[None] | None = None


class ListenerLease:
    """This listener's row in ``event_listeners``, kept alive while held (PostgreSQL only)."""

    def __init__(
        self,
        engine: AsyncEngine,
        purpose: str,
        on_ready: Callable[[], None],
        *,
        ttl_seconds: float = 30.0,
    ) -> None:
        self.engine = engine
        self.purpose = purpose
        self.on_ready = on_ready
        self.ttl_seconds = ttl_seconds
        self._hold: _Hold | None = None

    @property
    def listener_id(self) -> str | None:
        """The current row's id (None while not held)."""
        return self._hold.listener_id if self._hold is not None else None

    @property
    def ready(self) -> bool:
        """Whether writers see the row (so they notify)."""
        return self._hold is not None and self._hold.ready

    @property
    def held(self) -> bool:
        return self._hold is not None

    def hold(self) -> None:
        """Keep a row alive from now on (idempotent)."""
        if self._hold is None:
            hold = self._hold = _Hold(self.purpose)
            hold.task = asyncio.create_task(self._keep(hold), name=f"hitl-{self.purpose}-lease")

    def release(self, *, delete: bool = True) -> None:
        """Stop refreshing and delete the row (in the background; it expires anyway).

        ``delete=False`` when the engine is being disposed: the row then simply expires.
        """
        hold, self._hold = self._hold, None
        if hold is not None and hold.task is not None:
            hold.delete = delete
            hold.task.cancel()

    async def close(self) -> None:
        """Release and wait until the row is deleted (shutdown, before the engine goes)."""
        task = self._hold.task if self._hold is not None else None
        self.release()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _keep(self, hold: _Hold) -> None:
        params = {"listener_id": hold.listener_id, "purpose": self.purpose, "ttl": self.ttl_seconds}
        backoff = 0.2
        try:
            while True:
                try:
                    async with write_tx(self.engine) as conn:
                        await conn.execute(_HOLD, params)
                        if not hold.ready:
                            await conn.execute(_FORGET_EXPIRED)
                except Exception as exc:  # the database is away: writers stop seeing the row
                    hold.ready = False
                    logger.warning("event listener lease: %s: %s", type(exc).__name__, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.ttl_seconds / 3)
                    continue
                backoff = 0.2
                if not hold.ready:
                    hold.ready = True
                    self.on_ready()
                    loop = asyncio.get_running_loop()
                    loop.call_later(RECHECK_SECONDS, self._recheck, hold)
                await asyncio.sleep(self.ttl_seconds / 3)
        finally:
            hold.ready = False
            if hold.delete:
                await self._drop(hold.listener_id)

    async def _drop(self, listener_id: str) -> None:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(2), write_tx(self.engine) as conn:
                await conn.execute(_DROP, {"listener_id": listener_id})

    def _recheck(self, hold: _Hold) -> None:
        if hold.ready:
            self.on_ready()
