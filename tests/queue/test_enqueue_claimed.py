"""enqueue_claimed: a run queued already claimed by the enqueuing process's worker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from queue_helpers import expire_leases, fetch_run, thread_status
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine
from app.db.tables import ThreadRow
from app.queue import ClaimedRun, RunQueue, RunStatus


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def pg_queue(pg_engine: AsyncEngine) -> RunQueue:
    return RunQueue(pg_engine, max_attempts=3)


async def _new_thread_claimed(
    engine: AsyncEngine, queue: RunQueue, thread_id: str
) -> ClaimedRun | None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(ThreadRow).values(
                thread_id=thread_id, graph="g", status="queued", input={"x": 1}
            )
        )
        started = await queue.enqueue_claimed(conn, thread_id, worker_id="here", lease_seconds=30)
    if started is None:
        return None
    row, run = started
    assert (row.thread_id, row.status) == (thread_id, "running")  # the thread as claimed
    return run


async def test_a_new_threads_run_is_claimed_in_the_callers_transaction(
    pg_engine: AsyncEngine, pg_queue: RunQueue
) -> None:
    run = await _new_thread_claimed(pg_engine, pg_queue, "t1")

    assert run is not None
    assert (run.thread_id, run.worker_id, run.graph, run.input, run.started, dict(run.answers)) == (
        "t1",
        "here",
        "g",
        {"x": 1},
        False,
        {},
    )
    row = await fetch_run(pg_engine, run.id)
    assert (row["status"], row["worker_id"], row["attempts"]) == ("running", "here", 0)
    assert row["lease_expires_at"] > row["started_at"] == row["created_at"]
    assert await thread_status(pg_engine, "t1") == "running"
    # Nobody else can claim it, and it is an ordinary run: fenced finish by its worker.
    assert await pg_queue.claim("other", 30) is None
    async with pg_engine.begin() as conn:
        assert await pg_queue.finish(conn, run, RunStatus.DONE) is RunStatus.DONE


async def test_a_claimed_run_whose_worker_died_is_reaped_and_claimed_again(
    pg_engine: AsyncEngine, pg_queue: RunQueue
) -> None:
    run = await _new_thread_claimed(pg_engine, pg_queue, "t1")
    assert run is not None
    await expire_leases(pg_engine)

    reaped = await pg_queue.reap(reaper="other")

    assert [(r.id, r.status) for r in reaped] == [(run.id, RunStatus.QUEUED)]
    again = await pg_queue.claim("other", 30)
    assert again is not None and again.id == run.id and again.attempts == 1


async def test_an_active_run_is_reused_instead(pg_engine: AsyncEngine, pg_queue: RunQueue) -> None:
    async with pg_engine.begin() as conn:
        await conn.execute(sa.insert(ThreadRow).values(thread_id="t1", graph="g", status="queued"))
        queued = await pg_queue.enqueue(conn, "t1")
    async with pg_engine.begin() as conn:
        claimed = await pg_queue.enqueue_claimed(conn, "t1", worker_id="here", lease_seconds=30)
    assert claimed is None
    row = await fetch_run(pg_engine, queued)
    assert (row["status"], row["rerun"], row["worker_id"]) == ("queued", False, None)

    running = await pg_queue.claim("w1", 30)
    assert running is not None
    async with pg_engine.begin() as conn:
        claimed = await pg_queue.enqueue_claimed(conn, "t1", worker_id="here", lease_seconds=30)
    assert claimed is None
    assert (await fetch_run(pg_engine, queued))["rerun"] is True  # it runs again after


async def test_the_claim_rolls_back_with_the_callers_transaction(
    pg_engine: AsyncEngine, pg_queue: RunQueue
) -> None:
    with pytest.raises(RuntimeError):
        async with pg_engine.begin() as conn:
            await conn.execute(
                sa.insert(ThreadRow).values(thread_id="t1", graph="g", status="queued")
            )
            assert await pg_queue.enqueue_claimed(conn, "t1", worker_id="h", lease_seconds=30)
            raise RuntimeError("the request failed")
    async with pg_engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM runs")) == 0


async def test_sqlite_queues_the_run_for_the_claim_loop(sqlite_url: str) -> None:
    db_engine = create_engine(sqlite_url)
    queue = RunQueue(db_engine)
    assert await _new_thread_claimed(db_engine, queue, "t1") is None
    run = await queue.claim("w", 30)
    await db_engine.dispose()
    assert run is not None and run.thread_id == "t1"


def _thread(thread_id: str) -> dict[str, object]:
    return {
        "thread_id": thread_id,
        "tenant": "acme",
        "graph": "g",
        "input": {"x": 1},
        "next": [],
        "metadata": {"k": "v"},
        "webhook": None,
    }


async def test_a_new_thread_and_its_claimed_run_in_one_statement(
    pg_engine: AsyncEngine, pg_queue: RunQueue
) -> None:
    started = await pg_queue.start_claimed(_thread("t1"), worker_id="here", lease_seconds=30)

    assert started is not None
    row, run = started
    assert (row.thread_id, row.status, row.metadata_, row.values) == (
        "t1",
        "running",
        {"k": "v"},
        None,
    )
    assert (run.thread_id, run.worker_id, run.tenant, run.input, run.started) == (
        "t1",
        "here",
        "acme",
        {"x": 1},
        False,
    )
    stored = await fetch_run(pg_engine, run.id)
    assert (stored["status"], stored["worker_id"]) == ("running", "here")
    assert stored["started_at"] == stored["created_at"]
    async with pg_engine.begin() as conn:
        assert await pg_queue.finish(conn, run, RunStatus.DONE) is RunStatus.DONE


async def test_a_taken_thread_id_writes_nothing(pg_engine: AsyncEngine, pg_queue: RunQueue) -> None:
    assert await pg_queue.start_claimed(_thread("t1"), worker_id="a", lease_seconds=30)
    again = await pg_queue.start_claimed(
        {**_thread("t1"), "graph": "other"}, worker_id="b", lease_seconds=30
    )

    assert again is None
    async with pg_engine.connect() as conn:
        assert await conn.scalar(sa.text("SELECT count(*) FROM runs")) == 1
        assert await conn.scalar(sa.text("SELECT graph FROM threads")) == "g"


async def test_sqlite_has_no_one_statement_start(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        assert (
            await RunQueue(engine).start_claimed(_thread("t1"), worker_id="w", lease_seconds=30)
            is None
        )
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT count(*) FROM threads")) == 0
    finally:
        await engine.dispose()
