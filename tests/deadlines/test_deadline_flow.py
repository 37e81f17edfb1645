"""Deadlines through the real service: the API with its worker, a sweeper, real graphs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.app import create_app
from app.graphs.registry import GraphRegistry
from app.queue import RunQueue
from app.services.events import EventLog
from app.worker.sweeper import DeadlineSweeper
from tests.api.conftest import make_settings

from .graphs import SEEN, deadline_graphs

PUBLIC = "http://hitl.example"


@pytest.fixture
async def service(db_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    SEEN.clear()
    settings = make_settings(db_url, public_url=PUBLIC, worker_concurrency=8)
    app = create_app(settings, embedded_worker=True, registry=GraphRegistry(deadline_graphs()))
    async with app.router.lifespan_context(app):
        engine = app.state.services.engine
        # Another worker's sweeper (the embedded worker may run one too: both are safe).
        sweeper = DeadlineSweeper(
            engine, RunQueue(engine), EventLog(public_url=PUBLIC), interval=0.05
        )
        task = asyncio.create_task(sweeper.run())
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as c:
                yield app, c
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def start(client: httpx.AsyncClient, graph: str, key: str, timeout: float) -> dict[str, Any]:
    body = {"graph": graph, "thread_id": key, "input": {"key": key, "timeout": timeout}}
    response = await client.post("/threads", params={"wait": "true"}, json=body)
    assert response.status_code == 201, response.text
    thread: dict[str, Any] = response.json()
    assert thread["status"] == "interrupted", thread
    return thread


async def settled(client: httpx.AsyncClient, tid: str, seconds: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        thread: dict[str, Any] = (await client.get(f"/threads/{tid}")).json()
        if thread["status"] in ("completed", "failed"):
            return thread
        assert time.monotonic() < deadline, thread
        await asyncio.sleep(0.05)


async def test_the_default_resumes_the_graph_when_the_deadline_passes(
    service: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = service
    thread = await start(client, "timed_default", "d1", timeout=0.5)
    (pending,) = thread["interrupts"]
    assert pending["expires_at"] is not None
    shown = (await client.get(f"/interrupts/{pending['id']}")).json()
    assert shown["status"] == "pending" and shown["expires_at"] == pending["expires_at"]

    done = await settled(client, "d1")

    assert done["status"] == "completed"
    assert done["values"]["decision"] == {"approved": False, "by": "deadline"}
    assert SEEN["d1"] == [{"approved": False, "by": "deadline"}]
    expired = (await client.get(f"/interrupts/{pending['id']}")).json()
    assert expired["status"] == "expired"
    assert expired["answered_by"] == "deadline"
    assert expired["answer"] == {"approved": False, "by": "deadline"}
    late = await client.post(f"/interrupts/{pending['id']}/resume", json={"value": {}})
    assert late.status_code == 409


async def test_without_a_default_the_thread_fails_with_a_clear_error(
    service: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    _, client = service
    thread = await start(client, "timed_strict", "s1", timeout=0.3)
    (pending,) = thread["interrupts"]

    failed = await settled(client, "s1")

    assert failed["status"] == "failed" and failed["interrupts"] == []
    assert failed["error"]["type"] == "InterruptExpired"
    assert pending["id"] in failed["error"]["message"]
    assert "s1" not in SEEN  # the node never got an answer
    listed = (await client.get("/interrupts", params={"status": "expired"})).json()
    assert pending["id"] in [i["id"] for i in listed["interrupts"]]


async def test_human_and_deadline_race_one_winner_each_and_the_graph_sees_one_answer(
    service: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    """Many threads whose deadline fires while a human answers: for each, either the human
    got 202 and the graph saw the human's answer, or 409 and the graph saw the default."""
    _, client = service
    keys = [f"race{i}" for i in range(16)]
    ids: dict[str, str] = {}
    statuses: dict[str, int] = {}

    async def thread_with_a_human(i: int, key: str) -> None:
        thread = await start(client, "timed_default", key, timeout=0.8)
        ids[key] = thread["interrupts"][0]["id"]
        # The answer arrives around the deadline: a little before, at, or a little after it.
        await asyncio.sleep(0.6 + 0.03 * (i % 12))
        response = await client.post(
            f"/interrupts/{ids[key]}/resume",
            json={"value": {"approved": True}, "answered_by": "alice"},
        )
        statuses[key] = response.status_code

    await asyncio.gather(*(thread_with_a_human(i, k) for i, k in enumerate(keys)))
    results = await asyncio.gather(*(settled(client, k) for k in keys))

    for key, thread in zip(keys, results, strict=True):
        assert thread["status"] == "completed", thread
        assert len(SEEN[key]) == 1, SEEN[key]  # the node ran with exactly one answer
        shown = (await client.get(f"/interrupts/{ids[key]}")).json()
        if statuses[key] == 202:
            assert SEEN[key] == [{"approved": True}]
            assert (shown["status"], shown["answered_by"]) == ("answered", "alice")
        else:
            assert statuses[key] == 409
            assert SEEN[key] == [{"approved": False, "by": "deadline"}]
            assert (shown["status"], shown["answered_by"]) == ("expired", "deadline")
    print("human won:", sum(s == 202 for s in statuses.values()), "of", len(keys))
