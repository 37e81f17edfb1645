"""Real worker processes on one PostgreSQL database: crash recovery, draining, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine
from app.queue import RunQueue
from tests.e2e.conftest import start_server

from . import helpers as h
from .graphs import read_traces

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TESTS_DIR = Path(__file__).resolve().parents[1]


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_started(self, seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while ": started (" not in self.output():
            assert self.proc.poll() is None, f"worker exited early:\n{self.output()}"
            assert time.monotonic() < deadline, f"worker did not start:\n{self.output()}"
            time.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, seconds: float) -> int:
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.pid} did not exit in {seconds}s:\n{self.output()}")


SpawnWorker = Callable[..., WorkerProcess]


@pytest.fixture
def spawn_worker(pg_url: str, tmp_path: Path, trace_dir: Path) -> Iterator[SpawnWorker]:
    """Start worker processes on the test database; any still alive are killed at the end."""
    procs: list[WorkerProcess] = []

    def spawn(
        *, concurrency: int = 2, lease: float = 1.0, grace: float = 10.0, poll: float = 0.5
    ) -> WorkerProcess:
        log = tmp_path / f"worker-{len(procs)}.log"
        args = [sys.executable, "-m", "worker.worker_process", "--url", pg_url]
        args += ["--concurrency", str(concurrency), "--lease", str(lease)]
        args += ["--grace", str(grace), "--poll", str(poll)]
        path = os.pathsep.join(filter(None, [str(TESTS_DIR.parent), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "HITL_TEST_TRACE_DIR": str(trace_dir), "PYTHONPATH": path}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                args, cwd=TESTS_DIR, env=env, stdout=subprocess.DEVNULL, stderr=out
            )
        worker = WorkerProcess(proc, log)
        procs.append(worker)
        return worker

    yield spawn
    for worker in procs:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def events(trace_dir: Path, tid: str) -> list[tuple[str, int]]:
    return [(event, pid) for event, t, pid in read_traces(trace_dir) if t == tid]


async def test_several_worker_processes_run_every_run_exactly_once(
    engine: AsyncEngine, spawn_worker: SpawnWorker, trace_dir: Path
) -> None:
    workers = [spawn_worker(concurrency=3) for _ in range(3)]
    for worker in workers:
        await asyncio.to_thread(worker.wait_started)
    queue = RunQueue(engine)
    tids = [f"t{i:03d}" for i in range(150)]
    for tid in tids:
        await h.start_thread(engine, queue, "count", tid)

    async def all_completed() -> bool:
        return await h.statuses(engine) == {"completed": len(tids)}

    try:
        await until(all_completed, 90)
    except AssertionError:
        stuck = await h.runs(engine)  # finished runs keep no row
        logs = "\n".join(w.output()[-3000:] for w in workers)
        raise AssertionError(f"{await h.statuses(engine)} {stuck[:5]}\n{logs}") from None
    traces = read_traces(trace_dir)
    assert Counter(tid for _, tid, _ in traces) == dict.fromkeys(tids, 1)
    assert len({pid for _, _, pid in traces}) >= 2  # the work was shared
    assert await h.runs(engine) == []  # all finished, none left behind

    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert await asyncio.to_thread(worker.wait_exit, 15) == 0


async def test_a_killed_workers_run_is_finished_by_another_from_the_last_checkpoint(
    engine: AsyncEngine, spawn_worker: SpawnWorker, trace_dir: Path
) -> None:
    queue = RunQueue(engine)
    first = spawn_worker(lease=1.0)
    await asyncio.to_thread(first.wait_started)
    await h.start_thread(engine, queue, "slow", "t1")

    async def interrupted() -> bool:
        return (await h.thread(engine, "t1"))["status"] == "interrupted"

    await until(interrupted)
    paused_at = await h.checkpoint_ids(engine, "t1")
    (iid,) = await h.pending_ids(engine, "t1")
    await h.answer(engine, queue, "t1", {iid: "yes"})

    async def working() -> bool:
        return ("start", first.pid) in events(trace_dir, "t1")

    await until(working)
    first.proc.kill()  # SIGKILL mid-run: no shutdown code runs
    first.wait_exit(10)
    assert await h.checkpoint_ids(engine, "t1") == paused_at  # the run saved nothing

    second = spawn_worker(lease=1.0)
    await asyncio.to_thread(second.wait_started)

    async def taken_over() -> bool:
        return ("start", second.pid) in events(trace_dir, "t1")

    await until(taken_over, 20)  # after the dead worker's lease expired
    (trace_dir / "release-t1").touch()

    async def completed() -> bool:
        return (await h.thread(engine, "t1"))["status"] == "completed"

    await until(completed)
    assert events(trace_dir, "t1") == [
        ("start", first.pid),
        ("start", second.pid),
        ("done", second.pid),
    ]
    thread = await h.thread(engine, "t1")
    # Continued from the paused checkpoint: prepare ran once, the answer was delivered once.
    assert thread["values"]["steps"] == ["prepare", "ask", "work"]
    assert thread["values"]["result"] == "worked on yes"
    assert await h.runs(engine, "t1") == []  # finished runs keep no row
    (question,) = await h.interrupts(engine, "t1")
    assert question["consumed_at"] is not None
    second.signal(signal.SIGTERM)
    assert await asyncio.to_thread(second.wait_exit, 15) == 0
    assert "handed back" not in second.output()


async def test_a_killed_servers_own_run_is_finished_by_a_worker_process(
    engine: AsyncEngine,
    spawn_worker: SpawnWorker,
    trace_dir: Path,
    pg_url: str,
    tmp_path: Path,
) -> None:
    """resume?wait=true runs the run in the serving process (`app.services.local_runs`); a
    SIGKILL there leaves an ordinary leased run that another worker takes over."""
    server = start_server(
        pg_url,
        tmp_path,
        HITL_GRAPHS="slow=tests.worker.graphs:SLOW",
        HITL_TEST_TRACE_DIR=str(trace_dir),
        HITL_LEASE_SECONDS="1",
    )
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            body = {"graph": "slow", "thread_id": "t1", "input": {"tid": "t1"}}
            started = await client.post("/threads", params={"wait": "true"}, json=body)
            assert started.json()["status"] == "interrupted", started.text
            paused_at = await h.checkpoint_ids(engine, "t1")
            resume = asyncio.create_task(
                client.post("/threads/t1/resume", params={"wait": "true"}, json={"value": "yes"})
            )
            pid = server.process.pid

            async def working() -> bool:
                return ("start", pid) in events(trace_dir, "t1")

            await until(working)
            (active,) = [r for r in await h.runs(engine, "t1") if r["status"] == "running"]
            # Claimed in the resume's own transaction by the serving process's worker.
            assert active["started_at"] == active["created_at"]
            assert f":{pid}:" in active["worker_id"]
            server.process.kill()  # SIGKILL mid-run
            server.process.wait(10)
            with pytest.raises(httpx.HTTPError):
                await resume
    finally:
        server.terminate()
    assert await h.checkpoint_ids(engine, "t1") == paused_at  # the run saved nothing

    worker = spawn_worker(lease=1.0)
    await asyncio.to_thread(worker.wait_started)

    async def taken_over() -> bool:
        return ("start", worker.pid) in events(trace_dir, "t1")

    await until(taken_over, 20)
    (trace_dir / "release-t1").touch()

    async def completed() -> bool:
        return (await h.thread(engine, "t1"))["status"] == "completed"

    await until(completed)
    assert events(trace_dir, "t1") == [("start", pid), ("start", worker.pid), ("done", worker.pid)]
    thread = await h.thread(engine, "t1")
    assert thread["values"]["steps"] == ["prepare", "ask", "work"]
    assert thread["values"]["result"] == "worked on yes"
    assert await h.runs(engine, "t1") == []  # finished runs keep no row


async def test_sigterm_lets_the_running_run_finish_and_claims_nothing_more(
    engine: AsyncEngine, spawn_worker: SpawnWorker, trace_dir: Path
) -> None:
    queue = RunQueue(engine)
    worker = spawn_worker(lease=2.0, grace=20.0)
    await asyncio.to_thread(worker.wait_started)
    await h.start_thread(engine, queue, "block", "t1")

    async def working() -> bool:
        return ("start", worker.pid) in events(trace_dir, "t1")

    await until(working)
    worker.signal(signal.SIGTERM)
    await asyncio.sleep(0.5)
    await h.start_thread(engine, queue, "count", "t2")
    await asyncio.sleep(0.5)
    assert worker.proc.poll() is None  # still draining
    (trace_dir / "release-t1").touch()

    assert await asyncio.to_thread(worker.wait_exit, 15) == 0
    assert (await h.thread(engine, "t1"))["status"] == "completed"
    assert (await h.thread(engine, "t2"))["status"] == "queued"
    assert events(trace_dir, "t2") == []


async def test_sigterm_hands_back_runs_that_outlast_the_grace_period(
    engine: AsyncEngine, spawn_worker: SpawnWorker, trace_dir: Path
) -> None:
    queue = RunQueue(engine)
    worker = spawn_worker(lease=30.0, grace=0.5)
    await asyncio.to_thread(worker.wait_started)
    await h.start_thread(engine, queue, "block", "t1")

    async def working() -> bool:
        return ("start", worker.pid) in events(trace_dir, "t1")

    await until(working)
    began = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait_exit, 15) == 0
    assert time.monotonic() - began < 10  # not the 30 s lease
    (run,) = await h.runs(engine, "t1")
    assert (run["status"], run["worker_id"], run["attempts"]) == ("queued", None, 0)
    assert "handed back" in worker.output()

    # Handed back, not lost: the next worker picks it up at once.
    (trace_dir / "release-t1").touch()
    successor = spawn_worker(lease=30.0)
    await asyncio.to_thread(successor.wait_started)

    async def completed() -> bool:
        return (await h.thread(engine, "t1"))["status"] == "completed"

    await until(completed, 15)


async def test_paused_threads_cost_a_worker_process_no_connections_or_memory(
    engine: AsyncEngine, spawn_worker: SpawnWorker, pg_url: str
) -> None:
    queue = RunQueue(engine)
    worker = spawn_worker(concurrency=4)
    await asyncio.to_thread(worker.wait_started)
    database = make_url(pg_url).database

    async def pause(tids: list[str]) -> None:
        total = sum((await h.statuses(engine)).values()) + len(tids)
        for tid in tids:
            await h.start_thread(engine, queue, "approve", tid)

        async def paused() -> bool:
            return await h.statuses(engine) == {"interrupted": total}

        await until(paused, 60)

    async def worker_connections() -> int:
        async with engine.connect() as conn:
            count = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            )
        return int(count or 0)

    def rss_kib() -> int:
        for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    await pause([f"warm{i}" for i in range(20)])
    await asyncio.sleep(0.5)
    rss_before = rss_kib()
    await pause([f"t{i}" for i in range(200)])
    await asyncio.sleep(0.5)

    # 220 paused threads: the worker keeps only its pool (<= concurrency + 3) and LISTEN.
    assert await worker_connections() <= 4 + 3 + 1 + engine.pool.size()  # type: ignore[attr-defined]
    growth_mib = (rss_kib() - rss_before) / 1024
    assert growth_mib < 30, f"worker RSS grew by {growth_mib:.1f} MiB for 200 paused threads"
