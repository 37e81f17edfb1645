"""Lease keeping: the runs a worker executes, their heartbeat, and the reaper of dead workers.

    heartbeat  extends the leases of all running runs in one statement; a run whose lease is
               gone (reaped, cancelled, taken over) is cancelled, and being fenced it writes
               nothing;
    reaper     requeues runs whose lease expired because their worker died. A worker never
               reaps its own live runs (a blocked event loop makes them late, not dead), only
               its orphans: runs it stopped executing without settling them.
Both survive database outages: they log, back off and go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import UnavailableError
from app.queue import ClaimedRun, RunId, RunQueue, RunStatus
from app.queue.queue import OnGivenUp

__all__ = ["ActiveRun", "LeaseKeeper", "log_db_problem"]

logger = logging.getLogger(__name__)


def log_db_problem(worker_id: str, what: str, exc: Exception, failures: int, delay: float) -> None:
    """Warn on the first failure and then at 2, 4, 8... in a row; a traceback only once."""
    loud = failures & (failures - 1) == 0
    logger.log(
        logging.WARNING if loud else logging.DEBUG,
        "worker %s: %s failed %d time(s) in a row (%s: %s); retrying in %.1fs",
        worker_id,
        what,
        failures,
        type(exc).__name__,
        exc,
        delay,
        exc_info=failures == 1 and not isinstance(exc, UnavailableError),
    )


@dataclass(slots=True)
class ActiveRun:
    """A run this worker executes right now."""

    run: ClaimedRun
    task: asyncio.Task[None]
    lost: bool = False  # the heartbeat found the lease gone
    handed_back: bool = False  # cancelled by shutdown: give the run back


class LeaseKeeper:
    """Holds the leases of one worker's runs (heartbeat) and reaps those of dead workers."""

    def __init__(
        self,
        queue: RunQueue,
        worker_id: str,
        *,
        lease_seconds: float,
        heartbeat_seconds: float,
        reap_seconds: float,
        on_requeued: Callable[[], None],
        on_given_up: OnGivenUp | None = None,
    ) -> None:
        self.queue = queue
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.reap_seconds = reap_seconds
        self.on_requeued = on_requeued
        self.on_given_up = on_given_up
        #: Runs executing now, by id.
        self.running: dict[RunId, ActiveRun] = {}
        #: Runs this worker stopped executing without settling them (database failure, bug):
        #: its reaper may requeue them once their lease expires.
        self.orphans: set[RunId] = set()

    async def heartbeat_loop(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.heartbeat_seconds)
            late = loop.time() - began - self.heartbeat_seconds
            if late > self.lease_seconds / 3:
                logger.warning(
                    "worker %s: the event loop was blocked for %.1fs (a synchronous node?); "
                    "leases may have expired and runs been taken over",
                    self.worker_id,
                    late,
                )
            ids = [run_id for run_id, active in self.running.items() if not active.lost]
            if not ids:
                continue
            try:
                held = await self.queue.heartbeat_many(self.worker_id, ids, self.lease_seconds)
            except Exception as exc:
                failures += 1
                log_db_problem(self.worker_id, "heartbeat", exc, failures, self.heartbeat_seconds)
                continue
            failures = 0
            for run_id in set(ids) - held:
                active = self.running.get(run_id)
                if active is not None and not active.task.done():
                    logger.warning("run %s: lease gone; cancelling it", run_id)
                    active.lost = True
                    active.task.cancel()

    async def reaper_loop(self) -> None:
        failures = 0
        while True:
            try:
                reaped = await self.queue.reap(
                    reaper=self.worker_id, orphans=self.orphans, on_given_up=self.on_given_up
                )
            except Exception as exc:
                failures += 1
                log_db_problem(self.worker_id, "reap", exc, failures, self.reap_seconds)
                reaped = []
            else:
                failures = 0
            for item in reaped:
                self.orphans.discard(item.id)
                logger.warning(
                    "run %s of thread %s: lease expired; %s",
                    item.id,
                    item.thread_id,
                    "requeued" if item.status is RunStatus.QUEUED else "given up",
                )
            if reaped:
                self.on_requeued()
            await asyncio.sleep(self.reap_seconds)
