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
from app.services.events import record_events

from .helpers import add_thread, event
from .sse import free_port, stream

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def api_process(db_url: str, log: Path) -> Iterator[str]:
    """A separate API process (uvicorn, no worker) on a free port; yields its base URL."""
    port = free_port()
    env = {**os.environ, "HITL_DATABASE_URL": db_url, "HITL_ENVIRONMENT": "test"}
    command = [
        sys.executable, "-m", "uvicorn", "tests.events.sse_app:create", "--factory",
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
