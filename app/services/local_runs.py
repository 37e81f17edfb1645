"""Runs executed by the process whose request queued them, when that request waits anyway.

With ``?wait=true`` the caller waits until the run settles. The usual path is long: the queueing
transaction sends NOTIFY, a worker wakes and claims the run (a transaction of its own that also
reads the checkpoint), runs it, settles it, sends NOTIFY again, and the settle watch reads the
thread to wake the request. When this process hosts a worker with a free slot, the queueing
transaction claims the run for that worker instead (`RunQueue.enqueue_claimed`) and reads the
head it resumes from, and the request hands the run straight to the worker.

Nothing else changes: the run is an ordinary claimed run (leased, heartbeated, fenced, reaped if
the process dies), it counts against the worker's concurrency, and a shutdown drains it like any
other. When no slot is free, or the thread already has an active run, the run is queued as usual
and the request waits as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from app.queue import ClaimedRun
from app.services.run_saver import PrefetchedHead, prefetch_head

if TYPE_CHECKING:
    from app.services.execution import RunOutcome

__all__ = ["LocalRunner", "RunHere", "RunSlot"]


class RunSlot(Protocol):
    """One reserved place in a worker of this process."""

    worker_id: str
    lease_seconds: float

    def start(self, run: ClaimedRun) -> asyncio.Future[RunOutcome | None]:
        """Start ``run`` (claimed for ``worker_id``) in the worker; its outcome, None when it
        did not settle here. The worker owns the run: cancelling the future's waiter does
        not stop it."""
        ...

    def release(self) -> None:
        """Give the place back unused (idempotent; a no-op after `execute`)."""
        ...


class ClaimingQueue(Protocol):
    """The part of `app.queue.RunQueue` used here."""

    async def enqueue(self, conn: AsyncConnection, thread_id: str) -> Any: ...

    async def enqueue_claimed(
        self, conn: AsyncConnection, thread_id: str, *, worker_id: str, lease_seconds: float
    ) -> tuple[Any, ClaimedRun] | None: ...


class ThreadStartingQueue(ClaimingQueue, Protocol):
    """`ClaimingQueue` that can also insert a new thread with its run claimed."""

    async def start_claimed(
        self, thread: Mapping[str, Any], *, worker_id: str, lease_seconds: float
    ) -> tuple[Any, ClaimedRun] | None: ...


class LocalRunner(Protocol):
    """A worker of this process that takes runs from requests (`app.worker.Worker`)."""

    def reserve(self) -> RunSlot | None:
        """A free slot, or None (all busy, stopping, or not on PostgreSQL)."""
        ...

    async def reserve_when_free(self, seconds: float) -> RunSlot | None:
        """`reserve`, waiting up to ``seconds`` for a slot to free."""
        ...


#: How long a waiting request waits for a slot here before its run goes to the queue.
SLOT_WAIT_SECONDS = 0.05


class RunHere:
    """A request's intent to run its run in this process: the slot, then the claimed run.

    Use as a context manager around the request, so that a slot whose run was never claimed
    (the run was already queued, the transaction failed, the request was a replay) goes back.
    """

    def __init__(self, slot: RunSlot | None, runner: LocalRunner | None = None) -> None:
        self.slot = slot
        self.claimed: ClaimedRun | None = None
        #: Asked for a slot but none was free yet: `secure_slot` may still get one.
        self._runner = runner if slot is None else None

    @classmethod
    def reserve(cls, runner: LocalRunner | None, wait: bool) -> RunHere:
        """A slot of ``runner`` when the request waits and one is free; else an empty intent."""
        if not wait or runner is None:
            return cls(None)
        return cls(runner.reserve(), runner)

    async def secure_slot(self) -> None:
        """No slot was free when the request came: wait for one briefly, before anything is
        written (`SLOT_WAIT_SECONDS`); without one the run goes to the queue as usual."""
        runner, self._runner = self._runner, None
        if runner is not None and self.slot is None:
            self.slot = await runner.reserve_when_free(SLOT_WAIT_SECONDS)

    async def enqueue(self, conn: AsyncConnection, queue: ClaimingQueue, thread_id: str) -> Any:
        """Queue ``thread_id``'s run claimed by this slot's worker, inside ``conn``'s transaction;
        the thread's row as the claim left it (``running``).

        An ordinary enqueue without a slot, or when the thread has an active run already
        (None returned).
        """
        if self.slot is None:
            await queue.enqueue(conn, thread_id)
            return None
        started = await queue.enqueue_claimed(
            conn, thread_id, worker_id=self.slot.worker_id, lease_seconds=self.slot.lease_seconds
        )
        if started is None:
            self.give_back()  # the active run is queued work: the worker needs the slot for it
            return None
        row, claimed = started
        # The head the run resumes from, read in the same transaction (a new thread has none).
        head = (
            await prefetch_head(conn, thread_id)
            if claimed.started
            else PrefetchedHead(thread_id, None)
        )
        self.claimed = dataclasses.replace(claimed, prefetched=head)
        return row

    async def start_thread(self, queue: ThreadStartingQueue, thread: Mapping[str, Any]) -> Any:
        """Insert a new thread (its columns) with its first run claimed by this slot's worker,
        in one statement of its own; the thread's row, or None (no slot, or the id is taken:
        nothing written)."""
        if self.slot is None:
            return None
        started = await queue.start_claimed(
            thread, worker_id=self.slot.worker_id, lease_seconds=self.slot.lease_seconds
        )
        if started is None:
            return None
        row, run = started
        self.claimed = dataclasses.replace(run, prefetched=PrefetchedHead(run.thread_id, None))
        return row

    def give_back(self) -> None:
        """The run will not be claimed here (the thread has an active run): free the slot now,
        not when the request ends, so that the worker can take that run while it waits."""
        slot, self.slot = self.slot, None
        if slot is not None:
            slot.release()

    def rolled_back(self) -> None:
        """The queueing transaction failed: there is no claimed run."""
        self.claimed = None

    async def execute(self) -> RunOutcome | None:
        """Execute the claimed run (its transaction committed); None if it did not settle here."""
        if self.claimed is None or self.slot is None:
            return None
        slot, self.slot = self.slot, None
        return await asyncio.shield(slot.start(self.claimed))

    def __enter__(self) -> RunHere:
        return self

    def __exit__(self, *exc: object) -> None:
        slot, self.slot = self.slot, None
        if slot is None:
            return
        if self.claimed is not None:
            # Committed but not executed (the request failed or was cancelled in between):
            # the run is this worker's, so it runs anyway; nobody else would reap it soon.
            slot.start(self.claimed)
        else:
            slot.release()
