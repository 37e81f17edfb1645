"""Worker: claim runs, execute them concurrently under a heartbeated lease, drain on SIGTERM.

One claim loop and supervised side tasks (after procrastinate's worker):
    claim loop   claims while a slot is free; sleeps until woken (NOTIFY, a local enqueue,
                 a finished run) or for ``poll_seconds`` (polling guarantees progress);
    heartbeat, reaper   lease keeping (`app.worker.leases`);
    listener     LISTEN on PostgreSQL, on a dedicated connection that reconnects;
    deadlines, webhooks when built `from_settings` (issue 4's sweeper and dispatcher).
Every loop survives database outages: it logs, backs off and tries again.

Shutdown (SIGTERM/SIGINT or `stop`): stop claiming, let running runs finish for
``shutdown_grace_seconds``, then cancel the rest and hand them back to the queue. A second
signal skips the grace period. A paused thread is only rows: the worker keeps nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.errors import LeaseLostError, UnavailableError
from app.graphs.registry import GraphRegistry
from app.queue import DEFAULT_MAX_ATTEMPTS, ClaimedRun, RunQueue
from app.queue.listener import RunListener, asyncpg_dsn
from app.queue.wakeup import subscribe
from app.services.events import EventLog
from app.services.execution import RunExecutor, RunOutcome
from app.worker.leases import ActiveRun, LeaseKeeper, log_db_problem
from app.worker.sweeper import DeadlineSweeper
from app.worker.webhooks import WebhookDispatcher

__all__ = ["Worker", "default_worker_id"]

logger = logging.getLogger(__name__)


def default_worker_id() -> str:
    """host:pid:random, unique per Worker instance (fencing relies on it)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Worker:
    """Runs queued runs of ``graphs`` (name -> compiled graph) from the database of ``engine``."""

    def __init__(
        self,
        engine: AsyncEngine,
        graphs: Mapping[str, Any] | GraphRegistry,
        *,
        concurrency: int = 4,
        lease_seconds: float = 30.0,
        heartbeat_seconds: float | None = None,
        poll_seconds: float = 1.0,
        reap_seconds: float | None = None,
        shutdown_grace_seconds: float = 10.0,
        listen: bool = True,
        worker_id: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        events: EventLog | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.engine = engine
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.worker_id = worker_id or default_worker_id()
        self.queue = RunQueue(engine, max_attempts=max_attempts)
        self.executor = RunExecutor(engine, self.queue, graphs, events=events)
        # More supervised side tasks (deadline sweeper, webhook dispatcher), by name.
        self._extra_tasks: dict[str, Callable[[], Awaitable[None]]] = {}
        self.listen = listen and engine.dialect.name == "postgresql"
        self.listener: RunListener | None = None
        #: Set once the worker claims (and, on PostgreSQL, LISTEN was attempted).
        self.started = asyncio.Event()
        self._stopping = False
        self._force = asyncio.Event()
        self._wake = asyncio.Event()
        #: Wake-ups (NOTIFYs, requeues) not yet answered by a claim; see `_claim_loop`.
        self._signals = 0
        self.leases = LeaseKeeper(
            self.queue,
            self.worker_id,
            lease_seconds=lease_seconds,
            heartbeat_seconds=heartbeat_seconds or max(lease_seconds / 3, 0.05),
            reap_seconds=reap_seconds or max(lease_seconds / 2, 0.1),
            on_requeued=self._signal,
            on_given_up=self.executor.record_given_up,
        )
        self._running = self.leases.running
        #: Slots promised to requests of this process that run their own runs (`reserve`).
        self._reserved = 0
        #: 1 while the claim loop's claim is in flight: the run it may return needs a slot.
        self._claiming = 0
        self._slot_freed = asyncio.Event()
        #: Set whenever a slot may have freed, for requests in `reserve_when_free`.
        self._freed_for_requests = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(
        cls,
        engine: AsyncEngine,
        graphs: Mapping[str, Any] | GraphRegistry,
        settings: Settings,
        *,
        notifications: bool = True,
        **overrides: Any,
    ) -> Worker:
        """A worker configured by ``HITL_*`` settings (``hitl worker``, ``hitl serve``).

        It records run events, and (``notifications``) also settles interrupt deadlines and
        delivers webhooks: every worker runs those side tasks; they share the work safely.
        """
        options: dict[str, Any] = {
            "concurrency": settings.worker_concurrency,
            "lease_seconds": settings.lease_seconds,
            "heartbeat_seconds": settings.effective_heartbeat_seconds,
            "poll_seconds": settings.poll_seconds,
            "shutdown_grace_seconds": settings.shutdown_grace_seconds,
        }
        options.update(overrides)
        events = EventLog(public_url=settings.public_url, webhook_url=settings.webhook_url)
        worker = cls(engine, graphs, events=events, **options)
        if notifications:
            secret = settings.webhook_secret
            dispatcher = WebhookDispatcher(
                engine,
                secret.get_secret_value() if secret is not None else None,
                poll_seconds=settings.poll_seconds,
            )
            worker.add_side_task("deadlines", DeadlineSweeper(engine, worker.queue, events).run)
            worker.add_side_task("webhooks", dispatcher.run)
        return worker

    def add_side_task(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` beside the claim loop (supervised: restarted if it crashes)."""
        if self._loop is not None:
            raise RuntimeError("side tasks must be added before the worker runs")
        self._extra_tasks[name] = run

    @property
    def active_runs(self) -> int:
        """Runs executing right now (a paused thread is not one of them)."""
        return len(self._running)

    def _busy(self) -> bool:
        return len(self._running) + self._reserved >= self.concurrency

    def _full(self) -> bool:
        """No slot to promise: `_busy`, or the last free one awaits the claim in flight."""
        return len(self._running) + self._reserved + self._claiming >= self.concurrency

    def reserve(self) -> _Slot | None:
        """A slot for a run that a request of this process queues and hands over itself
        (`app.services.local_runs`); None when none is free, the worker is not running or
        stopping, or the database is SQLite (its claims are serialized anyway)."""
        if self._stopping or self._loop is None or self.queue.sqlite or self._full():
            return None
        self._reserved += 1
        return _Slot(self)

    async def reserve_when_free(self, seconds: float) -> _Slot | None:
        """`reserve`, waiting up to ``seconds`` for a slot to free.

        Under load runs end every few milliseconds, and a request that waits for its run
        anyway costs far less run here than queued: the queue's way (enqueue, NOTIFY, claim,
        settle watch) is several more round trips, and while that run holds a slot the next
        request finds none either, so with as many clients as slots the detour fed itself.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            slot = self.reserve()
            if slot is not None or self._stopping or self._loop is None or self.queue.sqlite:
                return slot
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._freed_for_requests.clear()  # no await since `reserve`: nothing freed meanwhile
            await _wait(self._freed_for_requests, remaining)

    def _unreserve(self) -> None:
        self._reserved -= 1
        self._slot_released()

    def _slot_released(self) -> None:
        """A slot may be free: wake the claim loop at capacity and requests waiting for one."""
        self._slot_freed.set()
        self._freed_for_requests.set()

    # -- lifecycle ------------------------------------------------------------------------

    def stop(self, *, graceful: bool = True) -> None:
        """Stop claiming and drain; ``graceful=False`` hands running runs back at once.

        Safe to call from any thread and more than once.
        """
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is not loop:
                loop.call_soon_threadsafe(self._request_stop, graceful)
                return
        self._request_stop(graceful)

    def _request_stop(self, graceful: bool) -> None:
        if not self._stopping:
            logger.info("worker %s: stopping (%d runs active)", self.worker_id, self.active_runs)
        self._stopping = True
        if not graceful:
            self._force.set()
        self._wake.set()
        self._slot_freed.set()

    async def run(self, *, install_signal_handlers: bool = False) -> None:
        """Work until stopped (`stop`, or SIGTERM/SIGINT when ``install_signal_handlers``)."""
        loop = asyncio.get_running_loop()
        self._loop = loop

        def wake() -> None:  # called from any thread
            loop.call_soon_threadsafe(self._signal)

        unsubscribe = subscribe(wake)
        signals = self._install_signal_handlers(loop) if install_signal_handlers else []
        side_tasks = [
            asyncio.create_task(self._supervise("heartbeat", self.leases.heartbeat_loop)),
            asyncio.create_task(self._supervise("reaper", self.leases.reaper_loop)),
        ]
        if self.listen:
            self.listener = RunListener(asyncpg_dsn(self.engine.url), self._signal)
            side_tasks.append(asyncio.create_task(self._supervise("listener", self.listener.run)))
        for name, extra in self._extra_tasks.items():
            side_tasks.append(
                asyncio.create_task(self._supervise(name, extra), name=f"hitl-{name}")
            )
        logger.info(
            "worker %s: started (concurrency %d, lease %.1fs)",
            self.worker_id,
            self.concurrency,
            self.lease_seconds,
        )
        self.started.set()
        try:
            await self._claim_loop()
        except asyncio.CancelledError:
            self._request_stop(graceful=False)  # cancelled from outside: hand back at once
            raise
        finally:
            try:
                await self._drain()
            finally:
                for task in side_tasks:
                    task.cancel()
                await asyncio.gather(*side_tasks, return_exceptions=True)
                unsubscribe()
                for sig in signals:
                    loop.remove_signal_handler(sig)
                logger.info("worker %s: stopped", self.worker_id)

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        def on_signal(sig: signal.Signals) -> None:
            graceful = not self._stopping  # the second signal means "now"
            logger.info("worker %s: %s received", self.worker_id, sig.name)
            self._request_stop(graceful)

        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
        return installed

    async def _supervise(self, name: str, loop_fn: Callable[[], Awaitable[None]]) -> None:
        """Keep a side task alive: a bug in one pass is logged, and the task starts again."""
        while True:
            try:
                await loop_fn()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("worker %s: %s task crashed; restarting", self.worker_id, name)
                await asyncio.sleep(1.0)

    # -- claiming -------------------------------------------------------------------------

    def _signal(self) -> None:
        """A run may be claimable (queued, requeued, or the listener reconnected)."""
        self._signals += 1
        self._wake.set()

    async def _claim_loop(self) -> None:
        """Claim while there is a free slot and a reason to: a wake-up, a poll, or a backlog.

        A listening worker counts wake-ups: each queueing transaction sends one, so after a
        successful claim it claims again at once only while some are unanswered (or when the
        run it got had none: a backlog). Otherwise the follow-up claim, which finds nothing
        when the queue is empty, waits up to `FOLLOW_UP_SECONDS` and is usually merged into
        the claim of the next wake-up: under load that saved an empty claim (three round trips)
        per run. An empty claim answers every wake-up that came before it. Without LISTEN
        (SQLite, other processes' runs) a success is followed by another claim at once.
        """
        failures = 0
        claim_now = True
        owed = False  # a follow-up claim is due after a success
        while not self._stopping:
            if self._busy():
                self._slot_freed.clear()
                if self._busy():
                    await self._slot_freed.wait()
                continue
            if not claim_now and self._signals == 0:
                # A timeout is a poll (or the follow-up): claim either way.
                await _wait(self._wake, FOLLOW_UP_SECONDS if owed else self.poll_seconds)
                claim_now = True
                continue  # stopping or at capacity meanwhile: checked first
            claim_now = owed = False
            seen = self._signals
            self._wake.clear()  # before claiming: a NOTIFY from now on triggers another claim
            self._claiming = 1
            try:
                run = await self.queue.claim(
                    self.worker_id, self.lease_seconds, prefetch=self.executor.prefetch
                )
            except Exception as exc:
                self._claiming = 0  # no run comes of it: the slot is free during the backoff
                failures += 1
                delay = min(0.25 * 2**failures, 10.0)
                log_db_problem(self.worker_id, "claim", exc, failures, delay)
                await _wait(self._wake, delay)  # stop() and NOTIFY cut the backoff short
                claim_now = True
                continue
            finally:
                self._claiming = 0
                self._slot_released()
            if failures:
                logger.info("worker %s: database reachable again", self.worker_id)
                failures = 0
            if run is None:
                self._signals = max(self._signals - seen, 0)  # those runs are taken already
                continue
            had_signal = self._signals > 0
            self._signals = max(self._signals - 1, 0)
            # Polling, or a run nobody announced (one NOTIFY for many): a backlog may wait.
            claim_now = not self.listen or not had_signal
            owed = not claim_now
            self._start(run)

    def _start(
        self, run: ClaimedRun, *, report_thread: bool = False
    ) -> asyncio.Task[RunOutcome | None]:
        task = asyncio.create_task(self._execute(run, report_thread), name=f"hitl-run-{run.id}")
        self._running[run.id] = ActiveRun(run, task)
        logger.debug(
            "worker %s: claimed run %s of thread %s", self.worker_id, run.id, run.thread_id
        )
        return task

    async def _execute(self, run: ClaimedRun, report_thread: bool) -> RunOutcome | None:
        outcome = None
        try:
            outcome = await self.executor.execute(run, report_thread=report_thread)
            logger.info(
                "run %s of thread %s: %s (thread %s)",
                run.id,
                run.thread_id,
                outcome.run_status,
                outcome.thread_status,
            )
        except asyncio.CancelledError:
            active = self._running.get(run.id)
            if active is not None and active.lost:
                logger.warning("run %s: lease lost; abandoned without writing", run.id)
            else:
                await self._release(run)
        except LeaseLostError:
            logger.warning("run %s: lease lost before commit; nothing written", run.id)
        except UnavailableError as exc:
            self.leases.orphans.add(run.id)
            logger.warning("run %s: database unavailable (%s); the lease will expire", run.id, exc)
        except Exception:
            self.leases.orphans.add(run.id)
            logger.exception("run %s of thread %s: unexpected error", run.id, run.thread_id)
        finally:
            self._running.pop(run.id, None)
            self._slot_released()
            if not self.listen:
                # A slot is free: claim again without waiting for a poll. A listening worker
                # needs no nudge (a loop at capacity claims on ``_slot_freed``, and NOTIFY
                # wakes an idle one); it would be one empty claim per run.
                self._wake.set()
        return outcome

    async def _release(self, run: ClaimedRun) -> None:
        try:
            async with asyncio.timeout(max(self.lease_seconds, 5.0)):
                released = await self.queue.release(run)
        except Exception as exc:  # the lease expires anyway; the reaper requeues it
            logger.warning("run %s: could not hand back (%s); it will be reaped", run.id, exc)
            return
        if released:
            logger.info("run %s of thread %s: handed back to the queue", run.id, run.thread_id)

    async def _drain(self) -> None:
        if not self._running:
            return
        grace = 0.0 if self._force.is_set() else self.shutdown_grace_seconds
        logger.info(
            "worker %s: waiting up to %.1fs for %d runs", self.worker_id, grace, len(self._running)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        force = asyncio.ensure_future(self._force.wait())
        try:
            while self._running and not self._force.is_set():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                tasks = {active.task for active in self._running.values()}
                await asyncio.wait(
                    {*tasks, force}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            force.cancel()
        pending = list(self._running.values())
        for active in pending:
            active.handed_back = True
            active.task.cancel()
        await asyncio.gather(*(a.task for a in pending), return_exceptions=True)


class _Slot:
    """A slot of `Worker` reserved for one request's run (`app.services.local_runs.RunSlot`)."""

    __slots__ = ("_worker", "lease_seconds", "worker_id")

    def __init__(self, worker: Worker) -> None:
        self._worker: Worker | None = worker
        self.worker_id = worker.worker_id
        self.lease_seconds = worker.lease_seconds

    def start(self, run: ClaimedRun) -> asyncio.Future[RunOutcome | None]:
        worker, self._worker = self._worker, None
        if worker is None:
            raise RuntimeError("this slot was used or released already")
        worker._reserved -= 1
        # Even when the worker is stopping, the run is taken: it is claimed for this worker,
        # and draining lets it finish (or hands it back) like every other.
        return worker._start(run, report_thread=True)

    def release(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker._unreserve()


#: How long a listening worker may defer the claim that follows a successful one.
FOLLOW_UP_SECONDS = 0.1


async def _wait(event: asyncio.Event, seconds: float) -> None:
    """Wait for ``event`` at most ``seconds``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
