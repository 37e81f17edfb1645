"""The worker loop in-process: concurrency, wake-ups, leases, shutdown, database outages."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine
from app.errors import LeaseLostError
from app.queue import RunQueue, RunStatus
from app.worker import Worker

from . import helpers as h
from .graphs import GRAPHS, read_traces

StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker(db_engine: AsyncEngine) -> AsyncIterator[StartWorker]:
    """Start workers in the background; each is stopped (and must exit) at teardown."""
    started: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(**options: Any) -> Worker:
        options = {"lease_seconds": 2.0, "poll_seconds": 0.2, **options}
        worker = Worker(db_engine, GRAPHS, **options)
        task = asyncio.create_task(worker.run())
        started.append((worker, task))
        async with asyncio.timeout(10):
            await worker.started.wait()
            if worker.listener is not None:
                await worker.listener.listening.wait()
        return worker

    yield start
    for worker, _task in started:
        worker.stop(graceful=False)
    for _, task in started:
        async with asyncio.timeout(15):
            await task


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def traced(trace_dir: Path, event: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return any(e == event for e, _, _ in read_traces(trace_dir))

    return check


async def test_worker_runs_many_threads_each_once(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker, trace_dir: Path
) -> None:
    await start_worker(concurrency=4)
    tids = [f"t{i:03d}" for i in range(40)]
    for tid in tids:
        await h.start_thread(db_engine, queue, "count", tid)

    async def all_done() -> bool:
        return await h.statuses(db_engine) == {"completed": len(tids)}

    await until(all_done)
    assert Counter(tid for _, tid, _ in read_traces(trace_dir)) == dict.fromkeys(tids, 1)
    assert await h.runs(db_engine) == []  # all finished, none left behind


async def test_idle_worker_wakes_on_enqueue_without_polling(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker, trace_dir: Path
) -> None:
    """NOTIFY on PostgreSQL, the in-process wake-up on SQLite: no 30 s poll needed."""
    await start_worker(poll_seconds=30)
    await asyncio.sleep(0.3)  # the worker is idle, waiting
    began = time.monotonic()
    await h.start_thread(db_engine, queue, "count", "t1")

    async def done() -> bool:
        return (await h.thread(db_engine, "t1"))["status"] == "completed"

    await until(done, 5)
    assert time.monotonic() - began < 5


async def test_a_slot_is_not_promised_while_a_claim_may_still_take_it(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker
) -> None:
    """A request's reservation (`Worker.reserve`) never pushes the worker past its concurrency:
    while the claim loop's claim is in flight, its run would need the last free slot."""
    worker = await start_worker(concurrency=1, poll_seconds=30)
    if queue.sqlite:
        assert worker.reserve() is None  # SQLite serializes claims: requests never run here
        return
    in_flight, let_go = asyncio.Event(), asyncio.Event()
    claim = worker.queue.claim

    async def held_claim(*args: Any, **kwargs: Any) -> Any:
        in_flight.set()
        await let_go.wait()
        return await claim(*args, **kwargs)

    async with asyncio.timeout(5):
        while (idle := worker.reserve()) is None:  # the startup claim may still be out
            await asyncio.sleep(0.01)
    idle.release()
    worker.queue.claim = held_claim  # type: ignore[method-assign]
    worker._wake.set()  # a poll: the loop claims now
    async with asyncio.timeout(5):
        await in_flight.wait()
    assert worker.reserve() is None
    let_go.set()
    async with asyncio.timeout(5):
        while (slot := worker.reserve()) is None:  # the claim found nothing: the slot is free
            await asyncio.sleep(0.01)
    assert worker.reserve() is None  # and now it is promised
    slot.release()


async def test_paused_threads_hold_no_worker_resources(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker, trace_dir: Path
) -> None:
    worker = await start_worker(concurrency=4)
    for i in range(30):
        await h.start_thread(db_engine, queue, "approve", f"t{i}")

    async def all_paused() -> bool:
        return await h.statuses(db_engine) == {"interrupted": 30}

    await until(all_paused)

    async def nothing_held() -> bool:
        # No task, no run, no checked-out connection for 30 paused threads.
        return worker.active_runs == 0 and db_engine.pool.checkedout() == 0  # type: ignore[attr-defined]

    await until(nothing_held, 5)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("hitl-run-")]


async def test_stop_lets_running_runs_finish_within_the_grace_period(
    db_engine: AsyncEngine, queue: RunQueue, trace_dir: Path
) -> None:
    worker = Worker(db_engine, GRAPHS, lease_seconds=2, poll_seconds=0.2, shutdown_grace_seconds=10)
    task = asyncio.create_task(worker.run())
    await h.start_thread(db_engine, queue, "block", "t1")
    await until(traced(trace_dir, "start"))

    worker.stop()
    await h.start_thread(db_engine, queue, "count", "t2")  # not claimed any more
    await asyncio.sleep(0.3)
    (trace_dir / "release-t1").touch()
    async with asyncio.timeout(10):
        await task

    assert (await h.thread(db_engine, "t1"))["status"] == "completed"
    assert (await h.thread(db_engine, "t2"))["status"] == "queued"


async def test_stop_hands_back_runs_still_running_after_the_grace_period(
    db_engine: AsyncEngine, queue: RunQueue, trace_dir: Path
) -> None:
    worker = Worker(
        db_engine, GRAPHS, lease_seconds=30, poll_seconds=0.2, shutdown_grace_seconds=0.3
    )
    task = asyncio.create_task(worker.run())
    await h.start_thread(db_engine, queue, "block", "t1")
    await until(traced(trace_dir, "start"))

    began = time.monotonic()
    worker.stop()
    async with asyncio.timeout(10):
        await task

    assert time.monotonic() - began < 5  # well before the 30 s lease
    (run,) = await h.runs(db_engine, "t1")
    assert (run["status"], run["worker_id"], run["attempts"]) == ("queued", None, 0)
    assert (await h.thread(db_engine, "t1"))["status"] == "queued"
    assert await h.checkpoint_ids(db_engine, "t1") == []
    assert ("done", "t1") not in {(e, t) for e, t, _ in read_traces(trace_dir)}


async def test_a_run_whose_lease_is_lost_is_cancelled_and_writes_nothing(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker, trace_dir: Path
) -> None:
    worker = await start_worker(lease_seconds=0.6)
    await h.start_thread(db_engine, queue, "block", "t1")
    await until(traced(trace_dir, "start"))

    async with db_engine.begin() as conn:  # another worker took the run over
        await conn.execute(sa.text("UPDATE runs SET worker_id = 'thief'"))

    async def cancelled() -> bool:
        return worker.active_runs == 0

    await until(cancelled, 5)
    (trace_dir / "release-t1").touch()
    await asyncio.sleep(0.3)
    assert await h.checkpoint_ids(db_engine, "t1") == []
    assert ("done", "t1") not in {(e, t) for e, t, _ in read_traces(trace_dir)}


async def test_worker_takes_over_a_run_whose_worker_died(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker, trace_dir: Path
) -> None:
    await h.start_thread(db_engine, queue, "count", "t1")
    dead = await queue.claim("dead-worker", 0.5)  # claimed, then never heard of again
    assert dead is not None

    await start_worker(lease_seconds=1)

    async def done() -> bool:
        return (await h.thread(db_engine, "t1"))["status"] == "completed"

    await until(done, 10)
    assert await h.runs(db_engine, "t1") == []  # finished by the new worker
    with pytest.raises(LeaseLostError):  # the dead worker's claim is void
        async with db_engine.begin() as conn:
            await queue.finish(conn, dead, RunStatus.DONE)


async def test_a_worker_blocked_by_a_sync_node_does_not_reap_its_own_run(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker, trace_dir: Path
) -> None:
    """The loop stalls past the lease; afterwards the worker's own reaper must not requeue
    the run it is finishing (it would run again, and again: a live-lock)."""
    await start_worker(lease_seconds=0.5, heartbeat_seconds=0.1, reap_seconds=0.05)
    await h.start_thread(db_engine, queue, "sleepy", "t1")

    async def done() -> bool:
        return (await h.thread(db_engine, "t1"))["status"] == "completed"

    await until(done, 20)
    assert await h.runs(db_engine, "t1") == []
    assert [e for e, _, _ in read_traces(trace_dir)] == ["start", "done"]


async def test_a_worker_from_settings_records_events_and_settles_deadlines(
    db_url: str, db_engine: AsyncEngine, queue: RunQueue, trace_dir: Path
) -> None:
    """``hitl worker``/``serve``'s worker: run events, the deadline sweeper, the dispatcher."""
    from app.config import Settings

    settings = Settings(
        database_url=db_url, lease_seconds=2, poll_seconds=0.1, public_url="http://hitl.test"
    )
    worker = Worker.from_settings(db_engine, GRAPHS, settings)
    task = asyncio.create_task(worker.run())
    try:
        await h.start_thread(db_engine, queue, "quick_deadline", "t1")

        async def completed() -> bool:
            return (await h.thread(db_engine, "t1"))["status"] == "completed"

        await until(completed, 20)  # nobody answered: the deadline's default did
        assert (await h.thread(db_engine, "t1"))["values"]["answer"] == {"amount": 0}
        (question,) = await h.interrupts(db_engine, "t1")
        assert (question["status"], question["answered_by"]) == ("expired", "deadline")
        assert question["consumed_at"] is not None
        async with db_engine.connect() as conn:
            types = (await conn.execute(sa.text("SELECT type FROM events ORDER BY id"))).all()
        assert [t[0] for t in types] == [
            "interrupt.created",
            "interrupt.expired",
            "thread.completed",
        ]
    finally:
        worker.stop(graceful=False)
        async with asyncio.timeout(15):
            await task


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # LISTEN/NOTIFY is PostgreSQL's
async def test_listener_reconnects_after_its_connection_is_cut(
    db_engine: AsyncEngine, queue: RunQueue, start_worker: StartWorker, trace_dir: Path
) -> None:
    worker = await start_worker(poll_seconds=60)  # wake-ups can only come from NOTIFY
    assert worker.listener is not None
    async with db_engine.connect() as conn:
        cut = await conn.scalar(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND query ILIKE 'LISTEN%'"
            )
        )
    assert cut == 1

    async def relistening() -> bool:
        async with db_engine.connect() as conn:
            return bool(
                await conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND query ILIKE 'LISTEN%'"
                    )
                )
            )

    await until(relistening, 10)
    await h.start_thread(db_engine, queue, "count", "t1")
    await until(lambda: _completed(db_engine, "t1"), 10)


@pytest.mark.postgres
async def test_worker_survives_a_database_outage(
    pg_admin_url: str, pg_url: str, trace_dir: Path
) -> None:
    name = make_url(pg_url).database
    admin = create_engine(pg_admin_url)
    engine = create_engine(pg_url)
    queue = RunQueue(engine)
    worker = Worker(engine, GRAPHS, lease_seconds=2, poll_seconds=0.2)
    task = asyncio.create_task(worker.run())
    try:
        await h.start_thread(engine, queue, "count", "before")
        await until(lambda: _completed(engine, "before"))

        async with admin.connect() as conn:  # the outage: no connections, existing ones cut
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"
                ),
                {"db": name},
            )
        await asyncio.sleep(2.5)  # the worker's loops fail, back off and retry
        assert not task.done()
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

        for _ in range(50):  # the test's own pooled connections were cut too
            try:
                await h.start_thread(engine, queue, "count", "after")
                break
            except Exception:  # UnavailableError, or a cut connection the pool replaces
                await asyncio.sleep(0.1)
        await until(lambda: _completed(engine, "after"), 20)
    finally:
        worker.stop(graceful=False)
        async with asyncio.timeout(15):
            await task
        await engine.dispose()
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        await admin.dispose()


async def _completed(engine: AsyncEngine, tid: str) -> bool:
    return (await h.thread(engine, tid))["status"] == "completed"
