"""Execute one claimed run: run the thread's graph, then settle everything in ONE transaction.

The graph runs against a buffered SQL saver (``durability="exit"``): nothing is written while
it runs. Then one transaction, fenced on the lease, ends the run, flushes the checkpoint and
its writes, records the new interrupts, marks the delivered answers consumed and updates the
thread. A worker that lost its lease (or crashed) leaves no trace: the run is retried from
the previous checkpoint, with the same answers, by whoever claims it next.

Outcomes:
    completed / interrupted (paused at a breakpoint counts as interrupted) -> thread updated;
    a node raised -> thread ``failed`` with ``{type, message}``; the engine's error writes are
        kept, so the thread can be retried from its last checkpoint;
    a value cannot be stored -> thread ``failed``, nothing of the run is stored, the previous
        checkpoint stays the head and the answers stay undelivered;
    database unavailable / lease lost -> nothing written; the lease runs out, the run is reaped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.checkpoint.serde import SerializationError, decode, to_jsonable
from app.checkpoint.sql import BufferedCheckpointer, SqlCheckpointer
from app.db.driver import fetch_one
from app.db.engine import begin_immediate
from app.db.errors import wrap_db_errors
from app.errors import LeaseLostError, NotFoundError, UnavailableError
from app.graph import Command, InvalidResumeError
from app.graphs.registry import GraphRegistry
from app.queue import ClaimedRun, ReapedRun, RunId, RunQueue, RunStatus
from app.services.events import (
    EventLog,
    NewEvent,
    interrupt_created,
    thread_completed,
    thread_failed,
)
from app.services.questions import (
    insert_questions,
    known_thread,
    question_rows,
    settled_thread,
)
from app.services.run_saver import PrefetchedHead, prefetch_head, run_saver
from app.services.run_statements import (
    CANCEL_RUN,
    CONSUME_ANSWERS,
    FAIL_THREAD,
    GIVEN_UP_THREADS,
    SETTLE_THREAD,
)
from app.services.settle_alone import Settled, settle_alone
from app.services.transactions import read_tx
from app.services.views import Thread

__all__ = ["RunExecutor", "RunOutcome"]


logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended, as stored."""

    run_id: RunId
    thread_id: str
    run_status: RunStatus
    #: The thread's status now (``queued`` when an answer arrived during the run).
    thread_status: str
    error: Mapping[str, str] | None = None
    #: The thread as settled, read in the settling transaction (only when asked for).
    thread: Thread | None = None


@dataclass(slots=True)
class _Settlement:
    """What the final transaction writes."""

    status: RunStatus
    thread_status: str
    values: Any = None
    next: list[str] | None = None
    error: dict[str, str] | None = None
    interrupts: tuple[Any, ...] = ()
    flush: bool = True


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


class RunExecutor:
    """Executes claimed runs of the graphs it is given (name -> compiled graph)."""

    def __init__(
        self,
        engine: AsyncEngine,
        queue: RunQueue,
        graphs: Mapping[str, Any] | GraphRegistry,
        *,
        events: EventLog | None = None,
    ) -> None:
        self.engine = engine
        self.queue = queue
        self.graphs = graphs
        #: Where run outcomes are recorded (interrupt.created, thread.completed/failed).
        self.events = events
        self.sqlite = engine.dialect.name == "sqlite"
        self._sql_saver = SqlCheckpointer(engine)

    async def execute(self, run: ClaimedRun, *, report_thread: bool = False) -> RunOutcome:
        """Run ``run`` to its next stop and store the result.

        ``report_thread``: the outcome carries the settled thread, read in the settling
        transaction (for a request waiting on this run; `app.services.local_runs`).

        Raises:
            LeaseLostError: the lease was lost; nothing was written.
            UnavailableError: the database failed; nothing was written.
        """
        if run.thread_status == "cancelled":
            return await self._settle(
                run, None, _Settlement(RunStatus.CANCELLED, "cancelled"), report_thread
            )
        graph = self._graph(run.graph)
        if graph is None:
            error = {
                "type": "GraphNotFoundError",
                "message": f"No graph is registered under the name {run.graph!r}.",
            }
            settlement = _Settlement(RunStatus.FAILED, "failed", error=error, flush=False)
            return await self._settle(run, None, settlement, report_thread)

        saver = run_saver(self._sql_saver, run.prefetched)
        settlement = await self._run_graph(run, graph.with_checkpointer(saver))
        try:
            return await self._settle(run, saver, settlement, report_thread)
        except SerializationError as exc:  # a value the buffer could only encode at flush
            failed = _Settlement(RunStatus.FAILED, "failed", error=_error(exc), flush=False)
            return await self._settle(run, None, failed, report_thread)

    @staticmethod
    async def prefetch(conn: AsyncConnection, thread_id: str) -> PrefetchedHead | None:
        """For `RunQueue.claim`: read the thread's head inside the claim's transaction."""
        return await prefetch_head(conn, thread_id)

    async def record_given_up(self, conn: AsyncConnection, runs: list[ReapedRun]) -> None:
        """For `RunQueue.reap`: thread.failed events of runs given up, in the reap's transaction."""
        if self.events is None:
            return
        tids = sorted({r.thread_id for r in runs})
        rows = (await conn.execute(GIVEN_UP_THREADS, {"tids": tids})).mappings().all()
        url = self.events.public_url
        failed = [
            thread_failed(row, error=row["error"], public_url=url)
            for row in rows
            if (row["error"] or {}).get("type") == "RunAbandonedError"
        ]
        await self.events.record(conn, failed)

    def _graph(self, name: str) -> Any:
        try:
            return self.graphs.get(name)
        except NotFoundError:
            return None

    async def _run_graph(self, run: ClaimedRun, graph: Any) -> _Settlement:
        config = {"configurable": {"thread_id": run.thread_id}}
        answers = dict(run.answers)
        try:
            try:
                result = await graph.arun(self._input(run, answers), config, durability="exit")
            except InvalidResumeError as exc:
                if exc.reason not in ("not_pending", "nothing_pending") or not answers:
                    raise
                # Some answers are for questions the head no longer asks (the thread moved on):
                # deliver only the ones still pending; the rest are settled unused.
                pending = set(exc.pending_ids or ())
                answers = {i: a for i, a in answers.items() if i in pending}
                logger.info(
                    "run %s: dropping answers to interrupts no longer pending: %s",
                    run.id,
                    sorted(set(run.answers) - pending),
                )
                result = await graph.arun(self._input(run, answers), config, durability="exit")
            values = to_jsonable(result.values)
        except (LeaseLostError, UnavailableError):
            raise
        except SerializationError as exc:
            return _Settlement(RunStatus.FAILED, "failed", error=_error(exc), flush=False)
        except Exception as exc:  # a node raised (or the graph refused its input)
            logger.info("run %s of thread %s failed: %r", run.id, run.thread_id, exc)
            return _Settlement(RunStatus.FAILED, "failed", error=_error(exc))
        status = "completed" if result.status == "completed" else "interrupted"
        return _Settlement(
            RunStatus.DONE,
            status,
            values=values,
            next=list(result.next),
            interrupts=tuple(result.interrupts),
        )

    @staticmethod
    def _input(run: ClaimedRun, answers: Mapping[str, Any]) -> Any:
        if not run.started:
            return decode(run.input)  # first run: the thread's input
        if answers:
            return Command(resume=dict(answers))
        return None  # continue from the head (retry after a failure, breakpoint, rerun)

    async def _settle(
        self,
        run: ClaimedRun,
        saver: BufferedCheckpointer | None,
        plan: _Settlement,
        report_thread: bool = False,
    ) -> RunOutcome:
        """The run's one commit; shielded, so a shutdown cannot cut it in half."""
        commit = asyncio.ensure_future(self._commit(run, saver, plan, report_thread))
        try:
            return await asyncio.shield(commit)
        except asyncio.CancelledError:
            await asyncio.wait([commit])
            raise

    async def _commit(
        self,
        run: ClaimedRun,
        saver: BufferedCheckpointer | None,
        plan: _Settlement,
        report_thread: bool,
    ) -> RunOutcome:
        if plan.status is RunStatus.DONE and not self.sqlite:
            alone = await settle_alone(
                self.engine,
                run,
                saver,
                thread_status=plan.thread_status,
                values=plan.values,
                next=plan.next,
                interrupts=plan.interrupts,
                events=self.events,
            )
            if alone is not None:
                return await self._settled_alone(run, plan, alone, report_thread)
        with wrap_db_errors():
            async with begin_immediate(self.engine) as conn:
                # Fenced first: a worker that lost its lease raises here and writes nothing.
                run_status = await self.queue.finish(conn, run, plan.status)
                if plan.status is RunStatus.CANCELLED:
                    return RunOutcome(run.id, run.thread_id, run_status, "cancelled")
                if saver is not None and plan.flush:
                    await saver.flush(conn)  # checkpoint before status
                thread_status = "queued" if run_status is RunStatus.QUEUED else plan.thread_status
                params: dict[str, Any]
                if plan.status is RunStatus.FAILED:
                    params = {"tid": run.thread_id, "status": thread_status, "error": plan.error}
                    settled = await fetch_one(conn, FAIL_THREAD, params)
                else:
                    params = {
                        "tid": run.thread_id,
                        "status": thread_status,
                        "values": plan.values,
                        "next": plan.next,
                    }
                    settled = await fetch_one(conn, SETTLE_THREAD, params)
                if settled is None:  # cancelled while it ran: keep the checkpoint, ask nothing
                    await conn.execute(CANCEL_RUN, {"run_id": run.id})
                    return RunOutcome(run.id, run.thread_id, RunStatus.CANCELLED, "cancelled")
                rows = question_rows(run, saver, plan.interrupts)
                created = await insert_questions(conn, rows, sqlite=self.sqlite)
                if plan.flush and run.answers:
                    ids = sorted(run.answers)
                    await conn.execute(CONSUME_ANSWERS, {"tid": run.thread_id, "ids": ids})
                return await self._record(
                    conn, run, plan, run_status, thread_status, settled, created, report_thread
                )

    async def _settled_alone(
        self, run: ClaimedRun, plan: _Settlement, settled: Settled, report_thread: bool
    ) -> RunOutcome:
        if settled.thread is None:
            return RunOutcome(run.id, run.thread_id, RunStatus.CANCELLED, "cancelled")
        status = settled.thread.status
        thread = None
        if report_thread:
            asked = len(plan.interrupts)
            thread = known_thread(settled.thread, status, asked, settled.created)
            if thread is None:
                async with read_tx(self.engine) as conn:
                    thread = await settled_thread(conn, settled.thread, status, asked, [])
        return RunOutcome(run.id, run.thread_id, settled.run_status, status, plan.error, thread)

    async def _record(
        self,
        conn: AsyncConnection,
        run: ClaimedRun,
        plan: _Settlement,
        run_status: RunStatus,
        thread_status: str,
        settled: Any,
        created: list[dict[str, Any]],
        report_thread: bool,
    ) -> RunOutcome:
        """The outcome's events (the outbox, in the run's one transaction) and the outcome."""
        if self.events is not None:
            outcome = self._events(run, plan, thread_status, created, self.events)
            await self.events.record(conn, outcome)
        thread = (
            await settled_thread(conn, settled, thread_status, len(plan.interrupts), created)
            if report_thread
            else None
        )
        return RunOutcome(run.id, run.thread_id, run_status, thread_status, plan.error, thread)

    @staticmethod
    def _events(
        run: ClaimedRun,
        plan: _Settlement,
        thread_status: str,
        created: list[dict[str, Any]],
        events: EventLog,
    ) -> list[NewEvent]:
        """What to tell webhooks and streams about this run's outcome."""
        url = events.public_url
        out = [interrupt_created(row, public_url=url) for row in created]
        thread = {"thread_id": run.thread_id, "graph": run.graph, "tenant": run.tenant}
        if thread_status == "completed":
            out.append(thread_completed(thread, values=plan.values, public_url=url))
        elif thread_status == "failed":
            out.append(thread_failed(thread, error=plan.error, public_url=url))
        return out
