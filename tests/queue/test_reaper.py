"""Reaper: runs whose worker died are requeued after lease expiry, and given up eventually."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from queue_helpers import AddThread, expire_leases, fetch_run, thread_status
from sqlalchemy.ext.asyncio import AsyncEngine

from app.queue import RunQueue, RunStatus


async def test_reaper_requeues_an_expired_lease(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    run = await queue.claim("w1", 0.3)
    assert run is not None
    assert await queue.reap() == []  # the lease is still valid

    await asyncio.sleep(0.6)  # the database clock passes the lease
    reaped = await queue.reap()

    assert [(r.id, r.thread_id, r.status) for r in reaped] == [(run.id, "t1", RunStatus.QUEUED)]
    row = await fetch_run(db_engine, run.id)
    assert (row["status"], row["worker_id"], row["attempts"]) == ("queued", None, 1)
    assert await thread_status(db_engine, "t1") == "queued"
    again = await queue.claim("w2", 30)
    assert again is not None and (again.id, again.attempts) == (run.id, 1)


async def test_reaper_leaves_live_leases_alone(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None

    assert await queue.reap() == []
    assert (await fetch_run(db_engine, run.id))["status"] == "running"


async def test_reaper_gives_up_after_max_attempts(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    for attempt in range(queue.max_attempts):
        run = await queue.claim(f"w{attempt}", 30)
        assert run is not None and run.attempts == attempt
        await expire_leases(db_engine)
        reaped = await queue.reap()
        expected = RunStatus.FAILED if attempt + 1 == queue.max_attempts else RunStatus.QUEUED
        assert [r.status for r in reaped] == [expected]

    assert await queue.claim("w9", 30) is None
    assert await thread_status(db_engine, "t1") == "failed"
    async with db_engine.connect() as conn:
        error = (
            await conn.execute(
                sa.text("SELECT error FROM threads").columns(
                    error=sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
                )
            )
        ).scalar_one()
    assert error["type"] == "RunAbandonedError"
    assert "heartbeat" in error["message"]


async def test_concurrent_reapers_requeue_each_run_once(
    db_url: str, db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    for i in range(20):
        await add_thread(f"t{i}")
    while await queue.claim("dead", 30) is not None:
        pass
    await expire_leases(db_engine)

    async with asyncio.timeout(30):
        results = await asyncio.gather(*(queue.reap() for _ in range(4)))

    reaped = [r.id for batch in results for r in batch]
    assert len(reaped) == len(set(reaped)) == 20
    async with db_engine.connect() as conn:
        attempts = (await conn.execute(sa.text("SELECT DISTINCT attempts FROM runs"))).all()
    assert attempts == [(1,)]


async def test_reaper_spares_its_own_runs_but_not_its_orphans(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    """A worker whose loop stalled past its lease must not requeue its own live run."""
    for tid in ("t1", "t2", "t3"):
        await add_thread(tid)
    mine = await queue.claim("w1", 30)
    orphan = await queue.claim("w1", 30)
    other = await queue.claim("w2", 30)
    assert mine is not None and orphan is not None and other is not None
    await expire_leases(db_engine)

    reaped = await queue.reap(reaper="w1", orphans=[orphan.id])

    assert sorted(r.id for r in reaped) == sorted([orphan.id, other.id])
    assert (await fetch_run(db_engine, mine.id))["status"] == "running"
    await queue.heartbeat(mine, 30)  # still ours
