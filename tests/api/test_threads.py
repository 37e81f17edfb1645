"""Threads: idempotent start, list/filter/paginate, wait, cancel, delete, history, failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
from fastapi import FastAPI

from tests.api.conftest import problem_of, start


async def test_start_returns_201_then_200_for_the_same_thread_id(client: httpx.AsyncClient) -> None:
    tid = f"order-{uuid.uuid4().hex[:8]}"
    body = {"graph": "approval", "thread_id": tid, "metadata": {"customer": "ada"}}
    first = await client.post("/threads", json=body)
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/threads/{tid}"
    created = first.json()
    assert created["thread_id"] == tid
    assert created["status"] in ("queued", "running", "interrupted")
    assert created["metadata"] == {"customer": "ada"}

    second = await client.post("/threads", json=body)
    assert second.status_code == 200, second.text
    assert second.json()["thread_id"] == tid

    settled = await client.post("/threads", params={"wait": "true"}, json=body)
    assert settled.json()["status"] == "interrupted"
    # Nothing was queued twice: exactly one question, from exactly one run.
    assert len(settled.json()["interrupts"]) == 1

    other_graph = await client.post("/threads", json={**body, "graph": "parallel"})
    assert problem_of(other_graph, 409, "thread_exists")["graph"] == "approval"


async def test_idempotency_key_on_start(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"graph": "approval", "input": None, "metadata": {"k": 1}}
    first = await client.post("/threads", json=body, headers=key)
    assert first.status_code == 201
    again = await client.post("/threads", json=body, headers=key)
    assert again.status_code == 201
    assert again.json() == first.json()  # the same generated thread id, the first response
    changed = await client.post("/threads", json={**body, "metadata": {"k": 2}}, headers=key)
    problem_of(changed, 409, "idempotency_key_reused")
    listed = (await client.get("/threads", params={"metadata.k": "1"})).json()
    assert [t["thread_id"] for t in listed["threads"]] == [first.json()["thread_id"]]


async def test_concurrent_starts_with_one_key_create_one_thread(client: httpx.AsyncClient) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"graph": "approval", "metadata": {"batch": "same-key"}}
    responses = await asyncio.gather(
        *(client.post("/threads", json=body, headers=key) for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["thread_id"] for r in responses}) == 1
    listed = (await client.get("/threads", params={"metadata.batch": "same-key"})).json()
    assert len(listed["threads"]) == 1


async def test_list_filter_and_paginate(client: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    made = []
    for n in range(7):
        graph = "approval" if n % 2 == 0 else "numbers"
        made.append(await start(client, graph, metadata={"tag": tag, "n": n, "even": n % 2 == 0}))
    newest_first = [t["thread_id"] for t in reversed(made)]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, "metadata.tag": tag}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/threads", params=params)).json()
        assert len(page["threads"]) <= 3
        seen += [t["thread_id"] for t in page["threads"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == newest_first

    by_graph = (
        await client.get("/threads", params={"graph": "numbers", "metadata.tag": tag})
    ).json()
    expected = [t["thread_id"] for t in reversed(made) if t["graph"] == "numbers"]
    assert [t["thread_id"] for t in by_graph["threads"]] == expected

    number = (await client.get("/threads", params={"metadata.n": "4", "metadata.tag": tag})).json()
    assert [t["thread_id"] for t in number["threads"]] == [made[4]["thread_id"]]
    flag = (
        await client.get("/threads", params={"metadata.even": "true", "metadata.tag": tag})
    ).json()
    assert len(flag["threads"]) == 4

    interrupted = (
        await client.get("/threads", params={"status": "interrupted", "metadata.tag": tag})
    ).json()
    assert len(interrupted["threads"]) == 7
    assert all(t["interrupts"] for t in interrupted["threads"])
    completed = (
        await client.get("/threads", params={"status": "completed", "metadata.tag": tag})
    ).json()
    assert completed["threads"] == []


async def test_wait_is_bounded(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory(embedded_worker=False, wait_max_seconds=0.3)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            response = await client.post(
                "/threads", params={"wait": "true"}, json={"graph": "approval"}
            )
            elapsed = loop.time() - started
    assert response.status_code == 201
    assert response.json()["status"] == "queued"  # no worker: nothing ran, the bound held
    assert 0.25 <= elapsed < 3


async def test_a_node_that_raises_fails_the_thread(client: httpx.AsyncClient) -> None:
    thread = await start(client, "failing")
    tid = thread["thread_id"]
    response = await client.post(
        f"/threads/{tid}/resume", params={"wait": "true"}, json={"value": "boom"}
    )
    failed = response.json()
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "ValueError"
    assert "exploded on purpose" in failed["error"]["message"]
    listed = (await client.get("/threads", params={"status": "failed"})).json()
    assert tid in [t["thread_id"] for t in listed["threads"]]
    history = (await client.get(f"/threads/{tid}/history")).json()
    assert history["checkpoints"], "earlier checkpoints remain"


async def test_a_value_that_cannot_be_stored_fails_the_thread(client: httpx.AsyncClient) -> None:
    thread = await start(client, "unstorable")
    assert thread["status"] == "failed"
    assert thread["error"]["message"]
    assert "object" in thread["error"]["message"]


async def test_cancel(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    tid = thread["thread_id"]
    question = thread["interrupts"][0]["id"]
    cancelled = await client.post(f"/threads/{tid}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["interrupts"] == []
    assert (await client.get(f"/interrupts/{question}")).json()["status"] == "cancelled"
    problem_of(await client.post(f"/threads/{tid}/resume", json={"value": 1}), 409)
    problem_of(await client.post(f"/threads/{tid}/cancel"), 409, "thread_busy")
    problem_of(await client.post("/threads/nope/cancel"), 404, "thread_not_found")


async def test_delete(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    tid = thread["thread_id"]
    question = thread["interrupts"][0]["id"]
    response = await client.delete(f"/threads/{tid}")
    assert response.status_code == 204
    assert response.content == b""
    problem_of(await client.get(f"/threads/{tid}"), 404, "thread_not_found")
    problem_of(await client.get(f"/interrupts/{question}"), 404)
    problem_of(await client.get(f"/threads/{tid}/history"), 404)
    problem_of(await client.delete(f"/threads/{tid}"), 404)


async def test_history_newest_first_and_paginated(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    tid = thread["thread_id"]
    await client.post(f"/threads/{tid}/resume", params={"wait": "true"}, json={"value": "yes"})
    full = (await client.get(f"/threads/{tid}/history")).json()
    checkpoints = full["checkpoints"]
    assert len(checkpoints) >= 2
    steps = [c["step"] for c in checkpoints]
    assert steps == sorted(steps, reverse=True)
    assert checkpoints[0]["values"] == {"approval": "yes"}
    assert checkpoints[0]["next"] == []

    paged: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(f"/threads/{tid}/history", params=params)).json()
        paged += [c["checkpoint_id"] for c in page["checkpoints"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == [c["checkpoint_id"] for c in checkpoints]


async def test_cancel_a_queued_thread_means_it_never_runs(
    app_factory: Callable[..., FastAPI],
) -> None:
    api_only = app_factory(embedded_worker=False)
    async with api_only.router.lifespan_context(api_only):
        transport = httpx.ASGITransport(app=api_only)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            queued = (await client.post("/threads", json={"graph": "approval"})).json()
            assert queued["status"] == "queued"
            cancelled = (await client.post(f"/threads/{queued['thread_id']}/cancel")).json()
            assert cancelled["status"] == "cancelled"
    with_worker = app_factory()
    async with with_worker.router.lifespan_context(with_worker):
        transport = httpx.ASGITransport(app=with_worker)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            # A later start of another thread runs; the cancelled one stays as it was.
            await start(client, "approval")
            again = (await client.get(f"/threads/{queued['thread_id']}")).json()
    assert again["status"] == "cancelled"
    assert again["interrupts"] == []
    assert again["values"] is None
