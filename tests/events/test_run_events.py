"""A run's outcome is recorded as events in its one settling transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.queue import RunQueue
from app.services.events import EventLog
from app.services.execution import RunExecutor, RunOutcome
from tests.worker import helpers as h
from tests.worker.graphs import GRAPHS

from .helpers import all_events

EVENTS = EventLog(public_url="http://hitl.example/", webhook_url="http://receiver.example/hook")


async def claim_and_execute(queue: RunQueue, executor: RunExecutor) -> RunOutcome:
    run = await queue.claim("w1", 30, prefetch=executor.prefetch)
    assert run is not None
    return await executor.execute(run)


async def test_interrupt_created_then_thread_completed(db_engine: AsyncEngine) -> None:
    queue = RunQueue(db_engine)
    executor = RunExecutor(db_engine, queue, GRAPHS, events=EVENTS)
    await h.start_thread(db_engine, queue, "approve", "t1")
    await claim_and_execute(queue, executor)

    (created,) = await all_events(db_engine)
    assert created.type == "interrupt.created" and created.thread_id == "t1"
    data = created.payload
    assert data["value"] == {"question": "approve?", "tid": "t1"} and data["node"] == "ask"
    iid = data["interrupt_id"]
    assert data["links"]["resume"] == f"http://hitl.example/interrupts/{iid}/resume"
    assert data["links"]["thread"] == "http://hitl.example/threads/t1"

    await h.answer(db_engine, queue, "t1", {iid: "yes"})
    await claim_and_execute(queue, executor)
    completed = (await all_events(db_engine))[-1]
    assert completed.type == "thread.completed"
    assert completed.payload["values"]["answer"] == "yes"


async def test_a_failing_node_records_thread_failed(db_engine: AsyncEngine) -> None:
    queue = RunQueue(db_engine)
    executor = RunExecutor(db_engine, queue, GRAPHS, events=EVENTS)
    await h.start_thread(db_engine, queue, "boom", "t1")
    await claim_and_execute(queue, executor)
    (failed,) = await all_events(db_engine)
    assert failed.type == "thread.failed"
    assert failed.payload["error"]["type"] and failed.payload["status"] == "failed"


async def test_a_question_still_pending_from_an_earlier_run_is_not_announced_again(
    db_engine: AsyncEngine,
) -> None:
    queue = RunQueue(db_engine)
    executor = RunExecutor(db_engine, queue, GRAPHS, events=EVENTS)
    await h.start_thread(db_engine, queue, "approve", "t1")
    await claim_and_execute(queue, executor)
    async with db_engine.begin() as conn:  # a run without answers (e.g. a retry)
        await queue.enqueue(conn, "t1")
    await claim_and_execute(queue, executor)
    assert [e.type for e in await all_events(db_engine)] == ["interrupt.created"]
