"""Heartbeat and fencing: a worker that lost its lease can extend nothing and write nothing."""

from __future__ import annotations

import pytest
from queue_helpers import AddThread, expire_leases, fetch_run, thread_status
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import LeaseLostError
from app.queue import RunQueue, RunStatus


async def test_heartbeat_extends_the_lease_from_the_database_clock(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    run = await queue.claim("w1", 5)
    assert run is not None
    before = (await fetch_run(db_engine, run.id))["lease_expires_at"]

    await queue.heartbeat(run, 600)

    after = (await fetch_run(db_engine, run.id))["lease_expires_at"]
    assert (after - before).total_seconds() > 500


async def test_heartbeat_many_reports_only_runs_still_held(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    await add_thread("t2")
    mine = await queue.claim("w1", 30)
    theirs = await queue.claim("w2", 30)
    assert mine is not None and theirs is not None

    held = await queue.heartbeat_many("w1", [mine.id, theirs.id], 30)

    assert held == {mine.id}
    assert await queue.heartbeat_many("w1", [], 30) == frozenset()


async def test_lost_lease_fences_heartbeat_finish_and_release(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    stale = await queue.claim("w1", 30)
    assert stale is not None
    await expire_leases(db_engine)
    assert [r.id for r in await queue.reap()] == [stale.id]
    fresh = await queue.claim("w2", 30)
    assert fresh is not None and fresh.id == stale.id

    with pytest.raises(LeaseLostError) as lost:
        await queue.heartbeat(stale, 30)
    assert lost.value.run_id == stale.id  # type: ignore[attr-defined]
    with pytest.raises(LeaseLostError):
        async with db_engine.begin() as conn:
            await queue.finish(conn, stale, RunStatus.DONE)
    assert await queue.release(stale) is False

    row = await fetch_run(db_engine, fresh.id)
    assert (row["status"], row["worker_id"], row["attempts"]) == ("running", "w2", 1)
    await queue.heartbeat(fresh, 30)


async def test_cancelled_run_fences_its_worker(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    """Cancelling sets the run's status; the worker's next fenced write finds no row."""
    import sqlalchemy as sa

    await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None
    async with db_engine.begin() as conn:
        await conn.execute(sa.text("UPDATE runs SET status = 'cancelled'"))

    with pytest.raises(LeaseLostError):
        await queue.heartbeat(run, 30)


async def test_release_hands_the_run_back(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None

    assert await queue.release(run) is True

    row = await fetch_run(db_engine, run.id)
    assert (row["status"], row["worker_id"], row["attempts"]) == ("queued", None, 0)
    assert await thread_status(db_engine, "t1") == "queued"
    again = await queue.claim("w2", 30)
    assert again is not None and again.id == run.id
