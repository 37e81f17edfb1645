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
from app.graph import END, START, StateGraph, interrupt
from app.graphs.registry import GraphRegistry
from app.graphs.review import graph as review_graph
from app.queue import ClaimedRun
from app.services import interrupts as interrupt_service
from app.services.local_runs import SLOT_WAIT_SECONDS
from tests.api.conftest import make_settings
from tests.api.graphs import AgentState, test_graphs


def ask_with_a_deadline(state: dict[str, Any]) -> dict[str, Any]:
    return {"approval": interrupt("Approve before the hour is out?", timeout=3600)}


def deadline_graph() -> Any:
    workflow = StateGraph(AgentState)
    workflow.add_node("ask", ask_with_a_deadline)
    workflow.add_edge(START, "ask")
    workflow.add_edge("ask", END)
    return workflow.compile()


@pytest.fixture
async def pg_app(pg_url: str) -> AsyncIterator[FastAPI]:
    registry = GraphRegistry(
        {**test_graphs(), "review": review_graph, "deadline": deadline_graph()}
    )
    app = create_app(
        # No polls: a claim in flight holds the only slot (`Worker.reserve`), and these tests
        # say which path a run took.
        make_settings(pg_url, worker_concurrency=1, poll_seconds=30),
        embedded_worker=True,
        registry=registry,
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


async def test_a_slot_freed_within_moments_still_runs_the_request_here(
    pg_app: FastAPI, pg_client: httpx.AsyncClient, claimed: list[ClaimedRun]
) -> None:
    """The only slot is busy when the request comes and frees a moment later: the request
    waits for it (`SLOT_WAIT_SECONDS`) and runs its run itself; nothing goes to the queue."""
    worker = pg_app.state.services.worker
    held = await _reserve(worker)  # concurrency 1: the only slot
    loop = asyncio.get_running_loop()
    loop.call_later(SLOT_WAIT_SECONDS / 5, held.release)

    response = await pg_client.post("/threads", params={"wait": "true"}, json={"graph": "approval"})

    assert response.json()["status"] == "interrupted", response.text
    assert claimed == []  # the worker's claim loop never took it: no queue, no claim
    assert await _runs(pg_app, response.json()["thread_id"]) == []
    assert worker._reserved == 0


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


# --- the one-statement resume (`app.services.resume_alone`) ------------------------------


@pytest.fixture
def answered_alone(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads whose waiting resume was answered by the one statement."""
    threads: list[str] = []
    resume_alone = interrupt_service.resume_alone

    async def recording(engine: Any, here: Any, thread_id: str, *args: Any, **kw: Any) -> Any:
        outcome = await resume_alone(engine, here, thread_id, *args, **kw)
        if outcome is not None:
            threads.append(thread_id)
        return outcome

    monkeypatch.setattr(interrupt_service, "resume_alone", recording)
    return threads


async def _stored_events(app: FastAPI, thread_id: str) -> list[dict[str, Any]]:
    query = sa.text(
        "SELECT e.type, e.event_id, e.tenant, e.graph, e.payload,"
        " (SELECT count(*) FROM webhook_deliveries AS d WHERE d.event_id = e.id) AS deliveries"
        " FROM events AS e WHERE e.thread_id = :t ORDER BY e.id"
    )
    async with app.state.services.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query, {"t": thread_id})).mappings()]


async def _question(app: FastAPI, thread_id: str) -> dict[str, Any]:
    query = sa.text(
        "SELECT id, status, answer, answered_by, request_id, expires_at, consumed_at"
        " FROM interrupts WHERE thread_id = :t"
    )
    async with app.state.services.engine.connect() as conn:
        return dict((await conn.execute(query, {"t": thread_id})).mappings().one())


@pytest.mark.parametrize("whole_second", [False, True])
async def test_the_one_statement_resume_stores_what_the_transaction_stores(
    pg_app: FastAPI,
    pg_client: httpx.AsyncClient,
    claimed: list[ClaimedRun],
    answered_alone: list[str],
    whole_second: bool,
) -> None:
    """The same answer, event, deliveries and outcome as the general path (taken here with an
    Idempotency-Key), for a question with a deadline (its time, as events store it)."""
    body = {"graph": "deadline", "webhook": "http://127.0.0.1:9/hook"}
    alone, general = [
        (await pg_client.post("/threads", params={"wait": "true"}, json=body)).json()
        for _ in range(2)
    ]
    if whole_second:  # isoformat() leaves out a zero fraction: so must the statement
        async with pg_app.state.services.engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE interrupts SET expires_at = date_trunc('second', expires_at)")
            )
    answers = []
    for thread, headers in ((alone, {}), (general, {"Idempotency-Key": "general"})):
        answers.append(
            await pg_client.post(
                f"/threads/{thread['thread_id']}/resume",
                params={"wait": "true"},
                json={"value": {"ok": True}, "answered_by": "ann"},
                headers=headers,
            )
        )
    assert answered_alone == [alone["thread_id"]]  # the other went the general way
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["values"] for a in answers] == [{"approval": {"ok": True}}] * 2
    assert claimed == []  # both runs ran in the requests' process

    questions = [await _question(pg_app, t["thread_id"]) for t in (alone, general)]
    for question in questions:
        assert question["status"] == "answered" and question["answer"] == {"ok": True}
        assert question["consumed_at"] is not None and question["request_id"]
    assert questions[0]["answered_by"] == questions[1]["answered_by"]

    def comparable(event: dict[str, Any], question: dict[str, Any]) -> dict[str, Any]:
        payload = event["payload"]
        if event["type"].startswith("interrupt."):
            assert payload[1] == question["id"]
            payload = [payload[0], "<question>", *payload[2:]]
        return {**event, "payload": payload}

    events = [
        [comparable(e, q) for e in await _stored_events(pg_app, t["thread_id"])]
        for t, q in zip((alone, general), questions, strict=True)
    ]
    assert [e["type"] for e in events[0]] == [
        "interrupt.created",
        "interrupt.resolved",
        "thread.completed",
    ]
    resolved = [e[1] for e in events]
    assert resolved[0] == resolved[1] | {"payload": resolved[0]["payload"]}
    assert resolved[0]["deliveries"] == 1
    (stored_alone, stored_general) = (r["payload"][2] for r in resolved)
    expires = [q["expires_at"].isoformat() for q in questions]
    assert (stored_alone.pop("expires_at"), stored_general.pop("expires_at")) == tuple(expires)
    assert stored_alone == stored_general
    assert ("." in expires[0]) is not whole_second or expires[0].endswith(".000000+00:00")
    assert await _runs(pg_app, alone["thread_id"]) == []


@pytest.mark.parametrize("alone", [True, False])
async def test_a_waiting_resume_queues_behind_an_active_run(
    pg_app: FastAPI,
    pg_client: httpx.AsyncClient,
    claimed: list[ClaimedRun],
    answered_alone: list[str],
    alone: bool,
) -> None:
    """A thread with a run queued already: the answer is kept, that run delivers it (no second
    run), and the request waits for it, having given its slot back (concurrency 1 here: that
    run needs it). Both ways: the one statement, and the transaction (an Idempotency-Key)."""
    started = (
        await pg_client.post("/threads", params={"wait": "true"}, json={"graph": "approval"})
    ).json()
    thread_id = started["thread_id"]
    async with pg_app.state.services.engine.begin() as conn:  # queued, nobody told
        await conn.execute(
            sa.text(
                "INSERT INTO runs (thread_id, status, rerun, attempts) VALUES (:t, 'queued', false, 0)"
            ),
            {"t": thread_id},
        )

    resumed = await pg_client.post(
        f"/threads/{thread_id}/resume",
        params={"wait": "true"},
        json={"value": "yes"},
        headers={} if alone else {"Idempotency-Key": "k"},
    )

    assert answered_alone == ([thread_id] if alone else [])
    assert resumed.status_code == 202
    assert resumed.json()["status"] == "completed", resumed.text
    assert [run.thread_id for run in claimed] == [thread_id]  # the queued run, woken
    assert await _runs(pg_app, thread_id) == []
    assert pg_app.state.services.worker._reserved == 0


async def test_a_question_with_a_schema_takes_the_transaction_and_refuses_a_bad_answer(
    pg_app: FastAPI, pg_client: httpx.AsyncClient, answered_alone: list[str]
) -> None:
    started = (
        await pg_client.post("/threads", params={"wait": "true"}, json={"graph": "numbers"})
    ).json()
    thread_id = started["thread_id"]
    assert started["interrupts"][0]["schema"] is not None

    refused = await pg_client.post(
        f"/threads/{thread_id}/resume", params={"wait": "true"}, json={"value": "not a number"}
    )

    assert refused.status_code == 422, refused.text
    assert (await _question(pg_app, thread_id))["status"] == "pending"  # nothing kept
    assert [e["type"] for e in await _stored_events(pg_app, thread_id)] == ["interrupt.created"]
    assert await _runs(pg_app, thread_id) == []
    assert answered_alone == []
    assert pg_app.state.services.worker._reserved == 0
