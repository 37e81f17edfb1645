"""Enqueue: at most one active run per thread; a resume during a run sets ``rerun``."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from queue_helpers import AddThread, fetch_run, find_run
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.queue import RunQueue, RunStatus


async def test_enqueue_twice_reuses_the_queued_run(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    first = await add_thread("t1")
    async with db_engine.begin() as conn:
        again = await queue.enqueue(conn, "t1")

    assert again == first
    row = await fetch_run(db_engine, first)
    assert (row["status"], row["rerun"]) == ("queued", False)


async def test_enqueue_while_running_flags_rerun_and_finish_requeues(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    run_id = await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None

    async with db_engine.begin() as conn:
        assert await queue.enqueue(conn, "t1") == run_id
    assert (await fetch_run(db_engine, run_id))["rerun"] is True

    async with db_engine.begin() as conn:
        assert await queue.finish(conn, run, RunStatus.DONE) is RunStatus.QUEUED

    row = await fetch_run(db_engine, run_id)
    assert (row["status"], row["rerun"], row["worker_id"]) == ("queued", False, None)
    again = await queue.claim("w2", 30)
    assert again is not None and again.id == run_id


async def test_enqueue_after_finish_queues_a_new_run(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None
    async with db_engine.begin() as conn:
        await queue.finish(conn, run, RunStatus.DONE)
    async with db_engine.begin() as conn:
        second = await queue.enqueue(conn, "t1")

    # The finished run left no row (SQLite may even hand its id out again).
    assert (await fetch_run(db_engine, second))["status"] == "queued"
    async with db_engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM runs")) == 1


async def test_enqueue_rolls_back_with_the_callers_transaction(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    run_id = await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None
    async with db_engine.begin() as conn:
        await queue.finish(conn, run, RunStatus.DONE)

    with pytest.raises(RuntimeError):
        async with db_engine.begin() as conn:
            await queue.enqueue(conn, "t1")
            raise RuntimeError("the caller's use case failed")

    assert await queue.claim("w1", 30) is None
    assert await find_run(db_engine, run_id) is None  # finished: no row; nothing new either


async def test_the_database_refuses_two_active_runs_of_one_thread(
    db_engine: AsyncEngine, add_thread: AddThread
) -> None:
    await add_thread("t1")
    with pytest.raises(IntegrityError):
        async with db_engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO runs (thread_id, status) VALUES ('t1', 'running')")
            )


async def test_concurrent_enqueues_of_one_thread_make_one_run(
    db_engine: AsyncEngine, queue: RunQueue, add_thread: AddThread
) -> None:
    run_id = await add_thread("t1")
    run = await queue.claim("w1", 30)
    assert run is not None
    async with db_engine.begin() as conn:
        await queue.finish(conn, run, RunStatus.DONE)

    async def enqueue() -> int:
        async with db_engine.begin() as conn:
            return await queue.enqueue(conn, "t1")

    async with asyncio.timeout(30):
        ids = await asyncio.gather(*(enqueue() for _ in range(8)))

    assert len(set(ids)) == 1
    assert run_id not in ids or db_engine.dialect.name == "sqlite"  # SQLite reuses the id
    async with db_engine.connect() as conn:
        active = await conn.scalar(
            sa.text("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
        )
    assert active == 1
