"""The deadline sweep on real databases: defaults resume, no default fails, one winner each."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import InterruptNotPendingError
from app.queue import RunQueue
from app.services.deadlines import seconds_to_next_deadline, sweep_expired
from app.services.events import EventLog
from app.services.interrupts import InterruptService

from .helpers import event_types, interrupt, paused_thread, runs, thread

EVENTS = EventLog(public_url="http://hitl.example")


async def test_a_default_answers_the_question_and_queues_a_run(db_engine: AsyncEngine) -> None:
    queue = RunQueue(db_engine)
    (iid,) = await paused_thread(db_engine, "t1", timeouts=[0.0], default={"approved": False})
    (later,) = await paused_thread(db_engine, "t2", timeouts=[60.0], default="x")

    settled = await sweep_expired(db_engine, queue, EVENTS)

    assert [(e.interrupt_id, e.resumed) for e in settled] == [(iid, True)]
    row = await interrupt(db_engine, iid)
    assert (row["status"], row["answer"], row["answered_by"]) == (
        "expired",
        {"approved": False},
        "deadline",
    )
    assert row["answered_at"] is not None and row["consumed_at"] is None
    assert (await thread(db_engine, "t1"))["status"] == "queued"
    assert await runs(db_engine, "t1") == ["queued"]
    ((kind, payload),) = await event_types(db_engine, "t1")
    assert kind == "interrupt.expired"
    assert payload["outcome"] == "resumed_with_default"
    assert payload["default"] == {"approved": False} and payload["interrupt_id"] == iid
    assert payload["links"]["resume"] == f"http://hitl.example/interrupts/{iid}/resume"
    # Not due yet: untouched, and the sweeper knows when to look again.
    assert (await interrupt(db_engine, later))["status"] == "pending"
    until = await seconds_to_next_deadline(db_engine)
    assert until is not None and 55 < until <= 60
    assert await sweep_expired(db_engine, queue, EVENTS) == []


async def test_without_a_default_the_thread_fails_and_its_other_questions_go(
    db_engine: AsyncEngine,
) -> None:
    expiring, other = await paused_thread(db_engine, "t1", timeouts=[0.0, None])

    settled = await sweep_expired(db_engine, RunQueue(db_engine), EVENTS)

    assert [(e.interrupt_id, e.resumed) for e in settled] == [(expiring, False)]
    row = await interrupt(db_engine, expiring)
    assert (row["status"], row["answer"], row["answered_by"]) == ("expired", None, "deadline")
    assert (await interrupt(db_engine, other))["status"] == "cancelled"
    failed = await thread(db_engine, "t1")
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "InterruptExpired"
    assert expiring in failed["error"]["message"] and "no default" in failed["error"]["message"]
    assert await runs(db_engine, "t1") == []
    kinds = await event_types(db_engine, "t1")
    assert [k for k, _ in kinds] == ["interrupt.expired", "thread.failed"]
    assert kinds[0][1]["outcome"] == "thread_failed"
    assert kinds[1][1]["error"] == failed["error"]
    assert kinds[1][1]["cancelled_interrupt_ids"] == [other]


async def test_a_busy_thread_keeps_its_expired_question_until_it_is_idle(
    db_engine: AsyncEngine,
) -> None:
    """No default and a run in progress: failing now would race the run; wait for it."""
    (iid,) = await paused_thread(db_engine, "t1", timeouts=[0.0], status="running")
    assert await sweep_expired(db_engine, RunQueue(db_engine), EVENTS) == []
    assert (await interrupt(db_engine, iid))["status"] == "pending"
    assert await seconds_to_next_deadline(db_engine) is None  # nothing ahead to wake up for


async def test_sweepers_in_parallel_settle_each_interrupt_once(db_engine: AsyncEngine) -> None:
    queue = RunQueue(db_engine)
    ids = []
    for i in range(30):
        ids += await paused_thread(db_engine, f"t{i}", timeouts=[0.0], default=f"d{i}")
    results = await asyncio.gather(
        *(sweep_expired(db_engine, queue, EVENTS, limit=7) for _ in range(8))
    )
    while len(settled := [e for r in results for e in r]) < 30:
        results.append(await sweep_expired(db_engine, queue, EVENTS, limit=7))
    assert sorted(e.interrupt_id for e in settled) == sorted(ids)
    expired = [k for k, _ in await event_types(db_engine) if k == "interrupt.expired"]
    assert len(expired) == 30


async def test_human_answer_and_deadline_at_the_same_moment_one_winner_each(
    db_engine: AsyncEngine,
) -> None:
    """Many questions with short deadlines, answered by a human as they expire: for each
    one, either the human got 202 (answered) or 409 (the deadline won): never both, never
    neither, and exactly one interrupt.resolved/expired event."""
    queue = RunQueue(db_engine)
    service = InterruptService(db_engine, queue, EVENTS)
    n = 24
    ids: list[str] = []
    for i in range(n):
        ids += await paused_thread(
            db_engine, f"t{i}", timeouts=[0.4 + 0.01 * (i % 6)], default="timeout"
        )
    human: dict[str, str] = {}

    async def answer(iid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            outcome = await service.resume_interrupt(iid, "human", answered_by="alice")
            human[iid] = str(outcome.status_code)
        except InterruptNotPendingError:
            human[iid] = "409"

    async def sweep_until(seconds: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            await sweep_expired(db_engine, queue, EVENTS)
            await asyncio.sleep(0.005)

    await asyncio.gather(
        sweep_until(1.2),
        sweep_until(1.2),
        *(answer(iid, 0.38 + 0.004 * (k % 12)) for k, iid in enumerate(ids)),
    )
    outcomes = {"202": 0, "409": 0}
    for iid in ids:
        row = await interrupt(db_engine, iid)
        events = [k for k, p in await event_types(db_engine) if p.get("interrupt_id") == iid]
        if human[iid] == "202":
            assert (row["status"], row["answer"], row["answered_by"]) == (
                "answered",
                "human",
                "alice",
            )
            assert events == ["interrupt.resolved"]
        else:
            assert human[iid] == "409"
            assert (row["status"], row["answer"]) == ("expired", "timeout")
            assert events == ["interrupt.expired"]
        outcomes[human[iid]] += 1
        assert await runs(db_engine, row["thread_id"]) == ["queued"]  # one run delivers it
    print("human vs deadline:", outcomes)
    assert sum(outcomes.values()) == n


async def test_a_numeric_default_on_sqlite(sqlite_url: str) -> None:
    """SQLite returns a JSON document that is a bare number as a number; it must still read."""
    from app.db.engine import create_engine

    engine = create_engine(sqlite_url)
    try:
        (iid,) = await paused_thread(engine, "t1", timeouts=[0.0], default=0)
        assert [e.interrupt_id for e in await sweep_expired(engine, RunQueue(engine), EVENTS)] == [
            iid
        ]
        assert (await interrupt(engine, iid))["answer"] == 0
    finally:
        await engine.dispose()
