"""Claim: each queued run is claimed exactly once, oldest first, with what execution needs."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import sqlalchemy as sa
from queue_helpers import AddThread, fetch_run, find_run, thread_status
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine
from app.db.tables import InterruptRow, utcnow
from app.queue import RunQueue, RunStatus


async def test_claim_returns_oldest_run_with_thread_data(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    first = await add_thread("t1", graph="approval", input={"x": 1})
    await add_thread("t2")

    run = await queue.claim("w1", 30)

    assert run is not None
    assert (run.id, run.thread_id, run.graph, run.input) == (first, "t1", "approval", {"x": 1})
    assert (run.worker_id, run.attempts, run.started, dict(run.answers)) == ("w1", 0, False, {})
    assert run.thread_status == "running"
    row = await fetch_run(db_engine, first)
    assert (row["status"], row["worker_id"]) == ("running", "w1")
    assert row["lease_expires_at"] is not None
    assert await thread_status(db_engine, "t1") == "running"
    assert await thread_status(db_engine, "t2") == "queued"


async def test_claim_on_empty_queue_returns_none(queue: RunQueue) -> None:
    assert await queue.claim("w1", 30) is None


async def test_claim_reports_checkpoint_and_undelivered_answers(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    async with db_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO checkpoints (thread_id, ns, checkpoint_id, step, source, data,"
                " created_at) VALUES ('t1', '', 'c1', 0, 'loop', :data, 'now')"
            ),
            {"data": b"{}"},
        )
        for iid, status, answer, consumed, has_default in [
            ("a" * 32, "answered", {"ok": True}, False, False),
            ("b" * 32, "answered", "old", True, False),
            ("c" * 32, "pending", None, False, False),
            ("d" * 32, "expired", {"amount": 0}, False, True),  # its deadline's default
            ("e" * 32, "expired", None, False, False),  # expired without one: nothing to send
        ]:
            await conn.execute(
                sa.insert(InterruptRow).values(
                    id=iid,
                    thread_id="t1",
                    graph="g",
                    node="n",
                    checkpoint_id="c1",
                    status=status,
                    answer=answer,
                    has_default=has_default,
                    consumed_at=utcnow() if consumed else None,
                )
            )

    run = await queue.claim("w1", 30)

    assert run is not None and run.started is True
    assert dict(run.answers) == {"a" * 32: {"ok": True}, "d" * 32: {"amount": 0}}


async def test_claim_leaves_a_cancelled_thread_cancelled(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    async with db_engine.begin() as conn:
        await conn.execute(sa.text("UPDATE threads SET status = 'cancelled'"))

    run = await queue.claim("w1", 30)

    assert run is not None and run.thread_status == "cancelled"
    assert await thread_status(db_engine, "t1") == "cancelled"


async def test_concurrent_claimers_claim_each_run_once(
    db_url: str, queue: RunQueue, add_thread: AddThread, db_engine: AsyncEngine
) -> None:
    """N claimers on their own engines (own pools) race over M runs: every run exactly once."""
    runs = 120
    claimers = 8
    for i in range(runs):
        await add_thread(f"t{i:04d}")

    engines = [create_engine(db_url) for _ in range(claimers)]
    claimed: list[tuple[str, int]] = []

    async def claimer(name: str, engine: AsyncEngine) -> None:
        q = RunQueue(engine)
        while (run := await q.claim(name, 30)) is not None:
            claimed.append((name, run.id))

    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(claimer(f"w{i}", e) for i, e in enumerate(engines)))
    finally:
        for engine in engines:
            await engine.dispose()

    counts = Counter(run_id for _, run_id in claimed)
    assert len(counts) == runs
    assert set(counts.values()) == {1}
    async with db_engine.connect() as conn:
        statuses = (
            await conn.execute(sa.text("SELECT status, count(*) FROM runs GROUP BY 1"))
        ).all()
    assert dict(statuses) == {"running": runs}
    if db_engine.dialect.name == "postgresql":
        # SKIP LOCKED spreads the work: more than one claimer got runs.
        assert len({name for name, _ in claimed}) > 1


@pytest.mark.parametrize("status", [RunStatus.DONE, RunStatus.FAILED])
async def test_finished_run_is_not_claimed_again(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread, status: RunStatus
) -> None:
    await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None
    async with db_engine.begin() as conn:
        assert await queue.finish(conn, run, status) is status

    assert await queue.claim("w2", 30) is None
    assert await find_run(db_engine, run.id) is None  # a finished run keeps no row
