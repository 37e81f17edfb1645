"""?wait=true on PostgreSQL: the request's own process runs the run (`app.services.local_runs`).

The worker's claim loop is watched (``claimed``: the runs it claimed): a run handed over by the
request never goes through it. Finished runs keep no row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.api.app import create_app
from app.queue import ClaimedRun
from tests.api.conftest import make_registry, make_settings


@pytest.fixture
async def pg_app(pg_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(
        # No polls: a claim in flight holds the only slot (`Worker.reserve`), and these tests
        # say which path a run took.
        make_settings(pg_url, worker_concurrency=1, poll_seconds=30),
        embedded_worker=True,
        registry=make_registry(),
    )
    async with app.router.lifespan_context(app):
        worker = app.state.services.worker
        await worker.started.wait()
        (await _reserve(worker)).release()  # the startup claim is done: the slot is free
        yield app


@pytest.fixture
def claimed(pg_app: FastAPI) -> list[ClaimedRun]:
    """The runs the worker's claim loop claims from now on (the real claim, recorded)."""
    queue = pg_app.state.services.worker.queue
    claim = queue.claim
    runs: list[ClaimedRun] = []

    async def recording_claim(*args: Any, **kwargs: Any) -> ClaimedRun | None:
        run = await claim(*args, **kwargs)
        if run is not None:
            runs.append(run)
        return run

    queue.claim = recording_claim
    return runs


@pytest.fixture
async def pg_client(pg_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=pg_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
        yield client


async def _runs(app: FastAPI, thread_id: str) -> list[dict[str, Any]]:
    query = sa.text("SELECT status FROM runs WHERE thread_id = :t ORDER BY id")
    async with app.state.services.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query, {"t": thread_id})).mappings()]


async def test_waiting_start_and_resume_run_in_the_requests_process(
    pg_app: FastAPI, pg_client: httpx.AsyncClient, claimed: list[ClaimedRun]
) -> None:
    started = await pg_client.post(
        "/threads", params={"wait": "true"}, json={"graph": "approval", "input": {}}
    )
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["status"] == "interrupted"
    [question] = body["interrupts"]
    assert question["value"] == "Do you approve this action?"
    thread_id = body["thread_id"]

    resumed = await pg_client.post(
        f"/threads/{thread_id}/resume", params={"wait": "true"}, json={"value": "yes"}
    )
    assert resumed.status_code == 202, resumed.text
    assert (resumed.json()["status"], resumed.json()["values"]) == (
        "completed",
        {"approval": "yes"},
    )
    # What the waiting requests returned is what is stored.
    stored = (await pg_client.get(f"/threads/{thread_id}")).json()
    assert {k: stored[k] for k in ("status", "values", "interrupts")} == {
        k: resumed.json()[k] for k in ("status", "values", "interrupts")
    }
    assert await _runs(pg_app, thread_id) == []  # finished runs keep no row
    assert claimed == []  # both runs were handed over, not claimed by the loop
    assert pg_app.state.services.worker.active_runs == 0
    assert pg_app.state.services.worker._reserved == 0


async def _reserve(worker: Any) -> Any:
    """The worker's slot, once its claim loop's startup claim is no longer in flight."""
    async with asyncio.timeout(5):
        while (slot := worker.reserve()) is None:
            await asyncio.sleep(0.01)
    return slot


async def test_without_a_free_slot_the_request_waits_for_the_queue(
    pg_app: FastAPI, pg_client: httpx.AsyncClient, claimed: list[ClaimedRun]
) -> None:
    worker = pg_app.state.services.worker
    held = await _reserve(worker)  # concurrency 1: the only slot
    assert worker.reserve() is None

    request = asyncio.create_task(
        pg_client.post("/threads", params={"wait": "true"}, json={"graph": "approval"})
    )
    await asyncio.sleep(0.5)
    assert not request.done()  # queued: the claim loop has no free slot either
    held.release()
    response = await asyncio.wait_for(request, 10)

    assert response.json()["status"] == "interrupted", response.text
    assert [run.thread_id for run in claimed] == [response.json()["thread_id"]]
    assert await _runs(pg_app, response.json()["thread_id"]) == []


async def test_a_replayed_start_does_not_run_again(
    pg_app: FastAPI, pg_client: httpx.AsyncClient, claimed: list[ClaimedRun]
) -> None:
    headers = {"Idempotency-Key": "k1"}
    body = {"graph": "approval", "thread_id": "t-replay"}
    first = await pg_client.post("/threads", params={"wait": "true"}, json=body, headers=headers)
    again = await pg_client.post("/threads", params={"wait": "true"}, json=body, headers=headers)

    assert first.json()["status"] == "interrupted"
    assert again.status_code == first.status_code == 201
    history = (await pg_client.get("/threads/t-replay/history")).json()["checkpoints"]
    assert len(history) == 1  # one run (a run stores one checkpoint), not two
    assert claimed == [] and await _runs(pg_app, "t-replay") == []
    assert pg_app.state.services.worker._reserved == 0


async def test_a_failing_node_settles_the_waiting_request_as_failed(
    pg_app: FastAPI, pg_client: httpx.AsyncClient
) -> None:
    started = await pg_client.post("/threads", params={"wait": "true"}, json={"graph": "failing"})
    thread_id = started.json()["thread_id"]
    failed = await pg_client.post(
        f"/threads/{thread_id}/resume", params={"wait": "true"}, json={"value": "boom"}
    )

    assert failed.status_code == 202
    assert failed.json()["status"] == "failed"
    assert failed.json()["error"]["type"] == "ValueError"
    assert pg_app.state.services.worker._reserved == 0


async def test_parallel_questions_returned_by_the_wait_are_those_stored(
    pg_client: httpx.AsyncClient,
) -> None:
    started = await pg_client.post("/threads", params={"wait": "true"}, json={"graph": "parallel"})
    body = started.json()
    stored = (await pg_client.get(f"/threads/{body['thread_id']}")).json()

    assert body["status"] == stored["status"] == "interrupted"
    assert len(body["interrupts"]) == 2
    assert body["interrupts"] == stored["interrupts"]
    left = next(i["id"] for i in body["interrupts"] if i["value"]["reviewer"] == "left")
    answered = await pg_client.post(
        f"/threads/{body['thread_id']}/resume",
        params={"wait": "true"},
        json={"values": {left: "yes"}},
    )
    again = (await pg_client.get(f"/threads/{body['thread_id']}")).json()
    assert answered.json()["status"] == again["status"] == "interrupted"
    assert answered.json()["interrupts"] == again["interrupts"]
    assert [i["value"]["reviewer"] for i in again["interrupts"]] == ["right"]


async def test_a_waiting_start_of_an_existing_thread_answers_it_as_it_is(
    pg_app: FastAPI, pg_client: httpx.AsyncClient
) -> None:
    body = {"graph": "approval", "thread_id": "t-again"}
    first = await pg_client.post("/threads", params={"wait": "true"}, json=body)
    again = await pg_client.post("/threads", params={"wait": "true"}, json=body)
    other = await pg_client.post(
        "/threads", params={"wait": "true"}, json={**body, "graph": "parallel"}
    )

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["status"] == "interrupted"
    assert again.json()["interrupts"] == first.json()["interrupts"]
    history = (await pg_client.get("/threads/t-again/history")).json()["checkpoints"]
    assert len(history) == 1  # one run
    assert await _runs(pg_app, "t-again") == []
    assert pg_app.state.services.worker._reserved == 0
