"""``?wait=true``: wait until a thread's run has settled, holding no connection while asleep.

A check is one short read: the thread, and whether a run of it is queued or running (plus its
pending questions, once settled). Between checks the waiter sleeps until a `SettleSignal` fires
or a poll interval passes. The signal is the settle watch (`app.services.settle_watch`:
PostgreSQL notifies when a worker records the run's outcome), which often hands over the settled
thread it has read, so the waiter needs no read of its own. Polling is the fallback, for runs
that settle without an event (a run that ends on a question asked before) and for a feed that is
down: every 2 ms growing to 50 ms without a signal; with one, every 25 ms growing to 100 ms,
since the signal does the waking; and while the signal's feed is up, every 250 ms growing to
1 s. Under load every notification makes the watch look at all waited-for threads, which
finds silent settles too, so frequent polls were only reads that found nothing.

A caller that has just queued the run itself and subscribed right after may skip the first
look (``look_first=False``): the run cannot settle unseen in the fraction of a millisecond in
between, and if it ever did, the next poll would find it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import RunRow, ThreadRow
from app.errors import ThreadNotFoundError
from app.services.thread_rows import THREAD_COLUMNS, load_threads
from app.services.transactions import read_tx
from app.services.views import SETTLED, Thread, ThreadStatus

__all__ = ["SettleSignal", "wait_until_settled"]

ACTIVE_RUN = ("queued", "running")
DONE = frozenset({*SETTLED, ThreadStatus.CANCELLED})

#: (first interval, growth factor, largest interval) in seconds.
POLL_ALONE = (0.002, 1.5, 0.05)
POLL_WITH_SIGNAL = (0.025, 2.0, 0.1)
POLL_WITH_FEED = (0.25, 2.0, 1.0)


class SettleSignal(Protocol):
    """Fires when something happened to the thread being waited for (it may have settled)."""

    #: The settled thread, when whoever fired the signal has read it already.
    settled: Thread | None

    @property
    def listening(self) -> bool:
        """Whether settles are being announced (the feed is connected)."""
        ...

    async def wait(self, seconds: float) -> None:
        """Return when it fires (or has fired since the last call), or after ``seconds``."""
        ...


def _progress(tenant: bool) -> sa.Select[Any]:
    """The thread and whether a run of it is still queued or running (built once per shape)."""
    active = sa.exists().where(
        RunRow.thread_id == ThreadRow.thread_id,
        # Literal, not an IN list: expanding parameters are re-rendered at every execution.
        sa.text(f"runs.status IN ({', '.join(repr(s) for s in ACTIVE_RUN)})"),
    )
    query = sa.select(*THREAD_COLUMNS, active.label("active")).where(
        ThreadRow.thread_id == sa.bindparam("thread_id")
    )
    return query.where(ThreadRow.tenant == sa.bindparam("tenant")) if tenant else query


PROGRESS = _progress(tenant=False)
PROGRESS_OF_TENANT = _progress(tenant=True)


async def wait_until_settled(
    engine: AsyncEngine,
    thread_id: str,
    *,
    tenant: str | None,
    seconds: float,
    signal: SettleSignal | None,
    look_first: bool = True,
) -> Thread:
    """The thread once it has settled, or as it is when ``seconds`` have passed."""
    deadline = time.monotonic() + max(seconds, 0.0)
    if signal is None:
        delay, growth, longest = POLL_ALONE
    else:
        delay, growth, longest = POLL_WITH_FEED if signal.listening else POLL_WITH_SIGNAL
    query = PROGRESS if tenant is None else PROGRESS_OF_TENANT
    params = {"thread_id": thread_id, "tenant": tenant}
    look = look_first or signal is None
    while True:
        if look:
            async with read_tx(engine) as conn:
                row = (await conn.execute(query, params)).first()
                if row is None:
                    raise ThreadNotFoundError(
                        f"Thread {thread_id!r} does not exist.", thread_id=thread_id
                    )
                if (not row.active and row.status in DONE) or time.monotonic() >= deadline:
                    (thread,) = await load_threads(conn, [row])
                    return thread
        look = True
        pause = min(delay, max(deadline - time.monotonic(), 0.0))
        if signal is None:
            await asyncio.sleep(pause)
        else:
            await signal.wait(pause)
            if signal.settled is not None:
                return signal.settled  # the settle watch read it: no look of our own
            if signal.listening and longest < POLL_WITH_FEED[2]:
                delay, growth, longest = POLL_WITH_FEED  # the feed is up: poll rarely
                continue
        delay = min(delay * growth, longest)
