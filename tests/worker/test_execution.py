"""Executing one claimed run: outcomes, the single final transaction, failures stored as data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import LeaseLostError
from app.queue import ClaimedRun, RunQueue, RunStatus
from app.services import settle_alone as settle_alone_module
from app.services.execution import RunExecutor, RunOutcome

from . import helpers as h
from .graphs import AMOUNT_SCHEMA


async def claim_and_execute(queue: RunQueue, executor: RunExecutor) -> RunOutcome:
    """Claim as the worker does (the head read inside the claim), then execute."""
    run = await queue.claim("w1", 30, prefetch=executor.prefetch)
    assert run is not None
    return await executor.execute(run)


async def test_start_interrupt_resume_complete(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "approve", "t1")

    first = await claim_and_execute(queue, executor)

    assert (first.run_status, first.thread_status) == (RunStatus.DONE, "interrupted")
    thread = await h.thread(db_engine, "t1")
    assert thread["status"] == "interrupted"
    assert thread["next"] == ["ask"]
    assert thread["values"]["tid"] == "t1"
    (question,) = await h.interrupts(db_engine, "t1")
    assert question["status"] == "pending"
    assert question["node"] == "ask"
    assert question["graph"] == "approve"
    assert question["value"] == {"question": "approve?", "tid": "t1"}
    assert question["checkpoint_id"] in await h.checkpoint_ids(db_engine, "t1")
    assert question["expires_at"] is None and question["consumed_at"] is None

    await h.answer(db_engine, queue, "t1", {question["id"]: "yes"})
    second = await claim_and_execute(queue, executor)

    assert (second.run_status, second.thread_status) == (RunStatus.DONE, "completed")
    thread = await h.thread(db_engine, "t1")
    assert thread["status"] == "completed"
    assert thread["values"]["result"] == "did yes"
    assert thread["values"]["steps"] == ["ask", "act"]
    assert thread["next"] == [] and thread["error"] is None
    (question,) = await h.interrupts(db_engine, "t1")
    assert question["status"] == "answered" and question["consumed_at"] is not None
    assert await h.runs(db_engine, "t1") == []  # finished runs keep no row
    assert await queue.claim("w1", 30) is None


async def test_interrupt_rows_carry_schema_default_and_a_db_clock_deadline(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "deadline", "t1")

    await claim_and_execute(queue, executor)

    (question,) = await h.interrupts(db_engine, "t1")
    assert question["schema"] == AMOUNT_SCHEMA
    assert (question["has_default"], question["default"]) == (True, {"amount": 0})
    ttl = (question["expires_at"] - question["created_at"]).total_seconds()
    assert 3590 < ttl < 3610

    await h.answer(db_engine, queue, "t1", {question["id"]: {"amount": 7}})
    outcome = await claim_and_execute(queue, executor)
    assert outcome.thread_status == "completed"
    assert (await h.thread(db_engine, "t1"))["values"]["answer"] == {"amount": 7}


async def test_a_question_asked_inside_a_subgraph(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "nested", "t1")
    await claim_and_execute(queue, executor)

    (question,) = await h.interrupts(db_engine, "t1")
    assert question["node"] == "inner_ask"
    assert question["ns"].startswith("sub:")
    assert question["checkpoint_id"]

    await h.answer(db_engine, queue, "t1", {question["id"]: "ok"})
    outcome = await claim_and_execute(queue, executor)

    assert outcome.thread_status == "completed"
    assert (await h.thread(db_engine, "t1"))["values"]["result"] == "did ok"


async def test_parallel_interrupts_and_a_resume_during_the_run(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    """An answer that arrives while a run executes requeues the run (``rerun``), not lost."""
    await h.start_thread(db_engine, queue, "review", "t1")
    first = await claim_and_execute(queue, executor)
    assert first.thread_status == "interrupted"
    questions = {i["value"]: i["id"] for i in await h.interrupts(db_engine, "t1")}
    assert set(questions) == {"legal ok?", "finance ok?"}
    assert {i["node"] for i in await h.interrupts(db_engine, "t1")} == {"legal", "finance"}

    await h.answer(db_engine, queue, "t1", {questions["legal ok?"]: "yes"})
    run = await queue.claim("w1", 30)
    assert run is not None and set(run.answers) == {questions["legal ok?"]}
    # The second answer comes in while the first one's run executes.
    await h.answer(db_engine, queue, "t1", {questions["finance ok?"]: "fine"})
    middle = await executor.execute(run)

    assert (middle.run_status, middle.thread_status) == (RunStatus.QUEUED, "queued")
    rows = {i["id"]: i for i in await h.interrupts(db_engine, "t1")}
    assert rows[questions["legal ok?"]]["consumed_at"] is not None
    assert rows[questions["finance ok?"]]["consumed_at"] is None
    assert rows[questions["finance ok?"]]["status"] == "answered"  # not reset to pending

    last = await claim_and_execute(queue, executor)

    assert (last.run_status, last.thread_status) == (RunStatus.DONE, "completed")
    thread = await h.thread(db_engine, "t1")
    assert thread["values"]["verdict"] == "finance:fine,legal:yes"
    # The start run, then one resume run: requeued and reused, not duplicated.
    assert await h.runs(db_engine, "t1") == []  # finished runs keep no row


async def test_a_node_that_raises_fails_the_thread_with_type_and_message(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "boom", "t1")

    outcome = await claim_and_execute(queue, executor)

    assert (outcome.run_status, outcome.thread_status) == (RunStatus.FAILED, "failed")
    thread = await h.thread(db_engine, "t1")
    assert thread["status"] == "failed"
    assert thread["error"] == {"type": "ValueError", "message": "kaboom in t1"}
    assert await h.checkpoint_ids(db_engine, "t1")  # the checkpoint before the failure remains
    assert await h.runs(db_engine, "t1") == []  # the error is on the thread


async def test_an_unstorable_value_fails_the_run_and_keeps_the_previous_checkpoint(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "unstorable", "t1")
    await claim_and_execute(queue, executor)
    before = await h.checkpoint_ids(db_engine, "t1")
    (iid,) = await h.pending_ids(db_engine, "t1")
    await h.answer(db_engine, queue, "t1", {iid: "go"})

    outcome = await claim_and_execute(queue, executor)

    assert outcome.run_status is RunStatus.FAILED
    thread = await h.thread(db_engine, "t1")
    assert thread["status"] == "failed"
    assert thread["error"]["type"] == "SerializationError"
    assert "Opaque" in thread["error"]["message"]
    assert await h.checkpoint_ids(db_engine, "t1") == before  # nothing of the run stored
    (question,) = await h.interrupts(db_engine, "t1")
    assert question["consumed_at"] is None  # the answer was not delivered


async def test_unknown_graph_fails_the_thread(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "nope", "t1")

    outcome = await claim_and_execute(queue, executor)

    assert outcome.run_status is RunStatus.FAILED
    assert (await h.thread(db_engine, "t1"))["error"]["type"] == "GraphNotFoundError"


async def test_a_thread_cancelled_during_its_run_stays_cancelled(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "approve", "t1")
    run = await queue.claim("w1", 30)
    assert run is not None
    await h.cancel_thread(db_engine, "t1")

    outcome = await executor.execute(run)

    assert (outcome.run_status, outcome.thread_status) == (RunStatus.CANCELLED, "cancelled")
    assert (await h.thread(db_engine, "t1"))["status"] == "cancelled"
    assert await h.interrupts(db_engine, "t1") == []  # no question for a cancelled thread
    assert await h.runs(db_engine, "t1") == []


async def test_a_run_claimed_after_cancel_is_not_executed(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "approve", "t1")
    await claim_and_execute(queue, executor)
    (iid,) = await h.pending_ids(db_engine, "t1")
    await h.answer(db_engine, queue, "t1", {iid: "yes"})
    # The thread gets cancelled, but (unlike the API) the queued run survives: still no run.
    async with db_engine.begin() as conn:
        import sqlalchemy as sa

        await conn.execute(sa.text("UPDATE threads SET status = 'cancelled'"))

    outcome = await claim_and_execute(queue, executor)

    assert outcome.run_status is RunStatus.CANCELLED
    assert (await h.thread(db_engine, "t1"))["values"].get("result") is None


async def test_a_worker_that_lost_its_lease_writes_nothing(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "approve", "t1")
    stale = await queue.claim("w1", 30)
    assert stale is not None
    assert await queue.release(stale)  # someone else will own it now
    fresh = await queue.claim("w2", 30)
    assert fresh is not None

    with pytest.raises(LeaseLostError):
        await executor.execute(stale)

    assert await h.checkpoint_ids(db_engine, "t1") == []
    assert await h.interrupts(db_engine, "t1") == []
    assert (await h.thread(db_engine, "t1"))["status"] == "running"
    outcome = await executor.execute(fresh)
    assert outcome.thread_status == "interrupted"


async def test_answers_to_questions_no_longer_pending_are_dropped(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    await h.start_thread(db_engine, queue, "approve", "t1")
    await claim_and_execute(queue, executor)
    (iid,) = await h.pending_ids(db_engine, "t1")
    await h.answer(db_engine, queue, "t1", {iid: "yes"})
    run = await queue.claim("w1", 30)
    assert run is not None
    stale = ClaimedRun(
        id=run.id,
        thread_id=run.thread_id,
        worker_id=run.worker_id,
        attempts=run.attempts,
        graph=run.graph,
        tenant=run.tenant,
        thread_status=run.thread_status,
        input=run.input,
        started=run.started,
        answers={**run.answers, "f" * 32: "for a question nobody asks"},
    )

    outcome = await executor.execute(stale)

    assert outcome.thread_status == "completed"
    assert (await h.thread(db_engine, "t1"))["values"]["result"] == "did yes"


@contextmanager
def count_transactions(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every committed unit of work: COMMITs, statements SQLAlchemy runs in autocommit, and
    statements `app.db.driver.fetch_alone` runs as a transaction of their own ("alone")."""
    seen: list[str] = []
    real_fetch_alone = settle_alone_module.fetch_alone

    async def fetch_alone(*args: Any, **kwargs: Any) -> Any:
        seen.append("alone")
        return await real_fetch_alone(*args, **kwargs)

    settle_alone_module.fetch_alone = fetch_alone  # type: ignore[assignment]

    def on_commit(conn: Any) -> None:
        seen.append("commit")

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            seen.append(statement.split(None, 1)[0])

    sync = engine.sync_engine
    event.listen(sync, "commit", on_commit)
    event.listen(sync, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(sync, "commit", on_commit)
        event.remove(sync, "before_cursor_execute", on_execute)
        settle_alone_module.fetch_alone = real_fetch_alone  # type: ignore[assignment]


async def test_a_run_costs_two_commits_the_claim_and_the_settlement(
    db_engine: AsyncEngine, queue: RunQueue, executor: RunExecutor
) -> None:
    """start -> interrupted -> resume -> completed: 2 + 2 worker commits (+ 2 by the API).

    On PostgreSQL the settlement is one statement committed on its own."""
    await h.start_thread(db_engine, queue, "approve", "t1")
    with count_transactions(db_engine) as first:
        await claim_and_execute(queue, executor)
    (iid,) = await h.pending_ids(db_engine, "t1")
    await h.answer(db_engine, queue, "t1", {iid: "yes"})
    with count_transactions(db_engine) as second:
        outcome = await claim_and_execute(queue, executor)
    with count_transactions(db_engine) as idle:
        assert await queue.claim("w1", 30, prefetch=executor.prefetch) is None

    assert outcome.thread_status == "completed"
    settlement = "alone" if db_engine.dialect.name == "postgresql" else "commit"
    assert first == second == ["commit", settlement]
    assert idle == []  # an empty claim is rolled back, not committed


async def test_a_run_given_up_by_the_reaper_records_thread_failed(db_engine: AsyncEngine) -> None:
    import sqlalchemy as sa

    from app.services.events import EventLog

    queue = RunQueue(db_engine, max_attempts=1)
    executor = RunExecutor(db_engine, queue, {}, events=EventLog(public_url="http://hitl.test"))
    await h.start_thread(db_engine, queue, "approve", "t1")
    assert await queue.claim("vanished", 0.01) is not None
    async with db_engine.begin() as conn:
        await conn.execute(sa.text("UPDATE runs SET lease_expires_at = created_at"))

    (reaped,) = await queue.reap(on_given_up=executor.record_given_up)

    assert reaped.status is RunStatus.FAILED
    thread = await h.thread(db_engine, "t1")
    assert (thread["status"], thread["error"]["type"]) == ("failed", "RunAbandonedError")
    async with db_engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT type, thread_id FROM events"))).all()
    assert [tuple(r) for r in rows] == [("thread.failed", "t1")]
