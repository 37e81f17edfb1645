"""Answering interrupts: by value, by id, by map; exactly once; bad answers change nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.api.conftest import problem_of, start
from tests.api.graphs import SEEN


async def _resume(
    client: httpx.AsyncClient, thread_id: str, body: dict[str, Any], **params: Any
) -> httpx.Response:
    return await client.post(f"/threads/{thread_id}/resume", json=body, params=params)


async def test_parallel_interrupts_resumed_by_id(client: httpx.AsyncClient) -> None:
    thread = await start(client, "parallel")
    assert thread["status"] == "interrupted"
    assert sorted(thread["next"]) == ["left", "right"]
    by_node = {i["node"]: i["id"] for i in thread["interrupts"]}
    assert set(by_node) == {"left", "right"}

    first = await client.post(
        f"/interrupts/{by_node['left']}/resume", params={"wait": "true"}, json={"value": "L"}
    )
    assert first.status_code == 202, first.text
    after_first = first.json()
    assert after_first["status"] == "interrupted"
    assert [i["id"] for i in after_first["interrupts"]] == [by_node["right"]]

    second = await client.post(
        f"/interrupts/{by_node['right']}/resume", params={"wait": "true"}, json={"value": "R"}
    )
    assert second.status_code == 202, second.text
    done = second.json()
    assert done["status"] == "completed"
    assert done["values"]["summary"] == "left=L,right=R"


async def test_parallel_interrupts_resumed_by_map(client: httpx.AsyncClient) -> None:
    thread = await start(client, "parallel")
    answers = {i["id"]: f"v-{i['node']}" for i in thread["interrupts"]}
    response = await _resume(client, thread["thread_id"], {"values": answers}, wait="true")
    assert response.status_code == 202, response.text
    done = response.json()
    assert done["status"] == "completed"
    assert done["values"]["summary"] == "left=v-left,right=v-right"


async def test_review_example_over_http(client: httpx.AsyncClient) -> None:
    """The bundled realistic graph: two reviewers at once, then approve/edit/reject."""
    thread = await start(
        client, "review", {"request": "Refund order 1234", "amount": 80, "customer": "a@b.c"}
    )
    reviewers = {i["value"]["reviewer"]: i for i in thread["interrupts"]}
    assert set(reviewers) == {"risk", "legal"}
    assert reviewers["risk"]["schema"]["required"] == ["approved"]

    bad = await _resume(
        client, thread["thread_id"], {"values": {reviewers["risk"]["id"]: {"approved": "yes"}}}
    )
    problem_of(bad, 422, "invalid_answer")

    answers = {i["id"]: {"approved": True, "comment": "fine"} for i in reviewers.values()}
    reviewed = (await _resume(client, thread["thread_id"], {"values": answers}, wait="true")).json()
    assert reviewed["status"] == "interrupted"
    (decision,) = reviewed["interrupts"]
    assert decision["node"] == "decide"

    edit_without_action = await _resume(
        client, thread["thread_id"], {"value": {"decision": "edit"}}
    )
    problem_of(edit_without_action, 422, "invalid_answer")

    edit = {
        "decision": "edit",
        "action": {"tool": "issue_refund", "args": {"order": "1234", "amount": 50}},
    }
    done = (await _resume(client, thread["thread_id"], {"value": edit}, wait="true")).json()
    assert done["status"] == "completed"
    assert done["values"]["result"].startswith("edited and executed issue_refund")


async def test_bare_value_with_several_pending_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    thread = await start(client, "parallel")
    body = problem_of(await _resume(client, thread["thread_id"], {"value": "x"}), 422)
    assert body["code"] == "ambiguous_resume"
    assert sorted(body["pending_ids"]) == sorted(i["id"] for i in thread["interrupts"])
    again = (await client.get(f"/threads/{thread['thread_id']}")).json()
    assert again["status"] == "interrupted"
    assert len(again["interrupts"]) == 2


async def test_schema_failing_answer_is_422_and_changes_nothing(client: httpx.AsyncClient) -> None:
    thread = await start(client, "numbers")
    (question,) = thread["interrupts"]
    assert question["schema"]["required"] == ["count"]
    for bad in ({"count": -1}, {"count": "three"}, {}, "3", {"count": 1, "extra": True}):
        body = problem_of(await _resume(client, thread["thread_id"], {"value": bad}), 422)
        assert body["code"] == "invalid_answer"
        assert body["errors"] and body["errors"][0]["interrupt_id"] == question["id"]
    by_id = await client.post(
        f"/interrupts/{question['id']}/resume", json={"value": {"count": 1.5}}
    )
    problem_of(by_id, 422, "invalid_answer")

    unchanged = (await client.get(f"/interrupts/{question['id']}")).json()
    assert unchanged["status"] == "pending"
    assert unchanged["answer"] is None
    runs_before = (await client.get(f"/threads/{thread['thread_id']}")).json()
    assert runs_before["status"] == "interrupted"

    ok = await _resume(client, thread["thread_id"], {"value": {"count": 3}}, wait="true")
    assert ok.json()["status"] == "completed"
    assert ok.json()["values"]["count"] == 3


async def test_resume_of_a_thread_not_waiting_is_409(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    tid = thread["thread_id"]
    await _resume(client, tid, {"value": "yes"}, wait="true")
    body = problem_of(await _resume(client, tid, {"value": "again"}), 409)
    assert body["code"] == "thread_not_interrupted"
    assert body["thread_id"] == tid


async def test_unknown_and_stale_ids(client: httpx.AsyncClient) -> None:
    problem_of(await _resume(client, "no-such-thread", {"value": 1}), 404, "thread_not_found")
    problem_of(
        await client.post(f"/interrupts/{'0' * 32}/resume", json={"value": 1}),
        404,
        "interrupt_not_found",
    )
    problem_of(await client.get(f"/interrupts/{'0' * 32}"), 404, "interrupt_not_found")

    thread = await start(client, "parallel")
    tid = thread["thread_id"]
    left, right = thread["interrupts"]
    unknown = await _resume(client, tid, {"values": {"f" * 32: "x"}})
    body = problem_of(unknown, 409, "interrupt_not_pending")
    assert body["interrupt_ids"] == ["f" * 32]

    await client.post(
        f"/interrupts/{left['id']}/resume", params={"wait": "true"}, json={"value": 1}
    )
    stale = await client.post(f"/interrupts/{left['id']}/resume", json={"value": 2})
    assert problem_of(stale, 409, "interrupt_not_pending")["status"] == 409
    stale_in_map = await _resume(client, tid, {"values": {left["id"]: 2, right["id"]: 3}})
    problem_of(stale_in_map, 409, "interrupt_not_pending")
    still = (await client.get(f"/threads/{tid}")).json()
    assert [i["id"] for i in still["interrupts"]] == [right["id"]]


async def test_concurrent_double_resume_exactly_one_wins(client: httpx.AsyncClient) -> None:
    thread = await start(client, "parallel")
    tid = thread["thread_id"]
    left = next(i for i in thread["interrupts"] if i["node"] == "left")
    token = uuid.uuid4().hex
    values = [f"{token}-{n}" for n in range(12)]

    async def answer(value: str, by_id: bool) -> httpx.Response:
        if by_id:
            return await client.post(f"/interrupts/{left['id']}/resume", json={"value": value})
        return await _resume(client, tid, {"values": {left["id"]: value}})

    responses = await asyncio.gather(*(answer(v, n % 2 == 0) for n, v in enumerate(values)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] + [409] * (len(values) - 1), [r.text for r in responses]
    for r in responses:
        if r.status_code == 409:
            problem_of(r, 409)
    winner = values[next(n for n, r in enumerate(responses) if r.status_code == 202)]

    stored = (await client.get(f"/interrupts/{left['id']}")).json()
    assert stored["answer"] == winner
    right = next(i for i in thread["interrupts"] if i["node"] == "right")
    await client.post(
        f"/interrupts/{right['id']}/resume", params={"wait": "true"}, json={"value": "r"}
    )
    done = (await client.get(f"/threads/{tid}")).json()
    assert done["status"] == "completed"
    assert done["values"]["summary"] == f"left={winner},right=r"
    seen = [answer for name, answer in SEEN if isinstance(answer, str) and answer.startswith(token)]
    assert seen == [winner]


async def test_idempotent_resume(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    tid = thread["thread_id"]
    headers = {"Idempotency-Key": f"answer-{tid}"}
    first = await client.post(f"/threads/{tid}/resume", json={"value": "yes"}, headers=headers)
    assert first.status_code == 202, first.text
    again = await client.post(f"/threads/{tid}/resume", json={"value": "yes"}, headers=headers)
    assert again.status_code == 202, again.text
    assert again.json() == first.json()
    other = await client.post(f"/threads/{tid}/resume", json={"value": "no"}, headers=headers)
    problem_of(other, 409, "idempotency_key_reused")
    done = (await client.get(f"/threads/{tid}")).json()
    # Settles with the first answer only.
    for _ in range(200):
        if done["status"] == "completed":
            break
        await asyncio.sleep(0.02)
        done = (await client.get(f"/threads/{tid}")).json()
    assert done["values"] == {"approval": "yes"}


async def test_answered_by_is_recorded(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    (question,) = thread["interrupts"]
    response = await client.post(
        f"/interrupts/{question['id']}/resume",
        json={"value": "ok", "answered_by": "ada"},
        headers={"X-Request-ID": "req-123"},
    )
    assert response.status_code == 202
    assert response.headers["x-request-id"] == "req-123"
    detail = (await client.get(f"/interrupts/{question['id']}")).json()
    assert detail["answered_by"] == "ada"
    assert detail["status"] == "answered"
