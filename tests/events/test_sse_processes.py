"""PostgreSQL: an event written by one process reaches SSE clients of other API processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine
from app.graphs.registry import GraphRegistry
from app.services.events import EventLog, record_events
from app.worker import Worker

from .helpers import add_thread, event
from .sse import free_port, stream

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def api_process(db_url: str, log: Path) -> Iterator[str]:
    """`hitl serve --no-worker` (API only) on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "HITL_DATABASE_URL": db_url, "HITL_ENVIRONMENT": "test"}
    env.pop("HITL_GRAPHS", None)  # the bundled examples
    command = [
        sys.executable, "-m", "app", "serve", "--no-worker",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url)
    yield engine
    await engine.dispose()


async def test_events_reach_clients_of_every_api_process(
    pg_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    await add_thread(engine, "t1")
    with (
        api_process(pg_url, tmp_path / "a.log") as a,
        api_process(pg_url, tmp_path / "b.log") as b,
    ):
        async with (
            httpx.AsyncClient(base_url=a, timeout=10) as client_a,
            httpx.AsyncClient(base_url=b, timeout=10) as client_b,
            stream(client_a, "/interrupts/stream") as inbox_a,
            stream(client_b, "/interrupts/stream") as inbox_b,
            stream(client_b, "/threads/t1/stream") as thread_b,
        ):
            started = time.monotonic()
            for i in range(5):  # written by this (third) process
                async with engine.begin() as conn:
                    await record_events(
                        conn, [event("t1", "interrupt.created", n=i)], global_webhook_url=None
                    )
            got_a, got_b, got_t = await asyncio.gather(
                inbox_a.take(5), inbox_b.take(5), thread_b.take(5)
            )
            latency = time.monotonic() - started
        for got in (got_a, got_b, got_t):
            assert [m.data["data"]["n"] for m in got] == [0, 1, 2, 3, 4]
        assert [m.id for m in got_a] == [m.id for m in got_b]  # one cursor space
        # NOTIFY wakes the other processes: far sooner than their 2 s safety poll.
        assert latency < 1.5, latency

        # A client that read part of the stream from A picks up the rest from B.
        async with (
            httpx.AsyncClient(base_url=b, timeout=10) as client_b,
            stream(
                client_b, "/threads/t1/stream", headers={"Last-Event-ID": got_a[1].id or ""}
            ) as rest,
        ):
            assert [m.data["data"]["n"] for m in await rest.take(3)] == [2, 3, 4]


async def test_a_thread_seen_live_from_two_api_processes_and_a_worker_process(
    pg_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    """Started through A, run by a worker elsewhere, answered through B: both A's and B's
    clients see every step (each written by a different process)."""
    worker = Worker(
        engine,
        GraphRegistry.from_spec(""),
        events=EventLog(public_url="http://hitl.example"),
        poll_seconds=0.05,
    )
    with (
        api_process(pg_url, tmp_path / "a.log") as a,
        api_process(pg_url, tmp_path / "b.log") as b,
    ):
        working = asyncio.create_task(worker.run())
        try:
            async with (
                httpx.AsyncClient(base_url=a, timeout=10) as client_a,
                httpx.AsyncClient(base_url=b, timeout=10) as client_b,
                stream(client_a, "/interrupts/stream") as inbox_a,
                stream(client_b, "/interrupts/stream") as inbox_b,
            ):
                started = await client_a.post(
                    "/threads", json={"graph": "approval", "thread_id": "x1"}
                )
                assert started.status_code == 201, started.text
                first_a, first_b = await asyncio.gather(inbox_a.take(1), inbox_b.take(1))
                assert first_a[0].event == first_b[0].event == "interrupt.created"
                iid = first_a[0].data["data"]["interrupt_id"]
                resumed = await client_b.post(f"/interrupts/{iid}/resume", json={"value": "ok"})
                assert resumed.status_code == 202, resumed.text
                rest_a, rest_b = await asyncio.gather(inbox_a.take(2), inbox_b.take(2))
        finally:
            worker.stop()
            await asyncio.wait_for(working, 15)
    for got in (first_a + rest_a, first_b + rest_b):
        assert [m.event for m in got] == [
            "interrupt.created",
            "interrupt.resolved",
            "thread.completed",
        ]
    assert [m.data["id"] for m in first_a + rest_a] == [m.data["id"] for m in first_b + rest_b]
