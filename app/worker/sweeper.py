"""The deadline sweeper: a worker side task that settles interrupts whose deadline passed.

Every worker runs one; they share the work safely (`app.services.deadlines.sweep_expired` locks
what it settles and skips what others hold). It sweeps in batches, then sleeps until the earliest
pending deadline by the database clock, at most ``interval`` (new questions may arrive meanwhile).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import UnavailableError
from app.services.deadlines import EnqueuePort, seconds_to_next_deadline, sweep_expired
from app.services.events import EventLog

__all__ = ["DeadlineSweeper"]

logger = logging.getLogger(__name__)


class DeadlineSweeper:
    """Settles expired interrupts of ``engine``'s database until cancelled."""

    def __init__(
        self,
        engine: AsyncEngine,
        queue: EnqueuePort,
        events: EventLog | None,
        *,
        interval: float = 1.0,
        batch_size: int = 100,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.events = events
        self.interval = interval
        self.batch_size = batch_size

    async def run(self) -> None:
        """Sweep until cancelled; survives database outages (logs, backs off, goes on)."""
        failures = 0
        while True:
            try:
                delay = await self.sweep_once()
            except UnavailableError as exc:
                failures += 1
                delay = min(0.25 * 2**failures, 10.0)
                if failures & (failures - 1) == 0:
                    logger.warning("deadline sweep: database unavailable (%s); retrying", exc)
            else:
                failures = 0
            await asyncio.sleep(delay)

    async def sweep_once(self) -> float:
        """Settle every interrupt due now; returns how long to sleep before the next sweep."""
        while True:
            settled = await sweep_expired(
                self.engine, self.queue, self.events, limit=self.batch_size
            )
            for expiry in settled:
                logger.info(
                    "interrupt %s of thread %s expired: %s",
                    expiry.interrupt_id,
                    expiry.thread_id,
                    "resumed with its default" if expiry.resumed else "thread failed",
                )
            if len(settled) < self.batch_size:
                break
        until = await seconds_to_next_deadline(self.engine)
        if until is None:
            return self.interval
        # A little past the deadline: the database clock must have reached it when we look.
        return min(self.interval, until + 0.005)
