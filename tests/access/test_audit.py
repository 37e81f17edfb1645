"""The answer's audit trail: who (the API key's name), when (the database clock), from which
request, and what; shown by GET /interrupts/{id}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from app.api.app import create_app
from tests.access.conftest import ACME, OPERATOR, start
from tests.api.conftest import make_registry, make_settings

SLACK = timedelta(seconds=30)  # database and test clocks are the same machine's


async def test_an_answer_by_interrupt_id_records_key_time_request_and_answer(
    client: httpx.AsyncClient,
) -> None:
    thread = await start(client, ACME)
    interrupt_id = thread["interrupts"][0]["id"]
    pending = (await client.get(f"/interrupts/{interrupt_id}", headers=ACME)).json()
    assert (pending["answered_by"], pending["answered_at"], pending["request_id"]) == (None,) * 3

    before = datetime.now(UTC)
    answered = await client.post(
        f"/interrupts/{interrupt_id}/resume",
        json={"value": {"ok": True}, "answered_by": "mallory"},  # a claim: the key decides
        headers={**ACME, "X-Request-ID": "audit-req-0001"},
    )
    assert answered.status_code == 202, answered.text
    after = datetime.now(UTC)

    detail = (await client.get(f"/interrupts/{interrupt_id}", headers=ACME)).json()
    assert detail["status"] == "answered"
    assert detail["answer"] == {"ok": True}
    assert detail["answered_by"] == "acme-bot"
    assert detail["request_id"] == "audit-req-0001"
    answered_at = datetime.fromisoformat(detail["answered_at"])
    assert before - SLACK <= answered_at <= after + SLACK
    # The operator sees the same record.
    assert (await client.get(f"/interrupts/{interrupt_id}", headers=OPERATOR)).json() == detail


async def test_a_thread_resume_records_the_generated_request_id(client: httpx.AsyncClient) -> None:
    thread = await start(client, ACME)
    interrupt_id = thread["interrupts"][0]["id"]
    resumed = await client.post(
        f"/threads/{thread['thread_id']}/resume",
        params={"wait": "true"},
        json={"value": "yes"},
        headers=OPERATOR,
    )
    assert resumed.json()["status"] == "completed"
    detail = (await client.get(f"/interrupts/{interrupt_id}", headers=ACME)).json()
    assert detail["answered_by"] == "ops"
    assert detail["request_id"] == resumed.headers["x-request-id"]
    assert detail["answer"] == "yes"
    listed = (await client.get("/interrupts", params={"status": "answered"}, headers=ACME)).json()[
        "interrupts"
    ]
    assert [i["id"] for i in listed] == [interrupt_id]


async def test_without_keys_the_body_says_who(db_url: str) -> None:
    app: FastAPI = create_app(make_settings(db_url), embedded_worker=True, registry=make_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            thread = await start(client, {})
            interrupt_id = thread["interrupts"][0]["id"]
            await client.post(
                f"/interrupts/{interrupt_id}/resume",
                json={"value": "y", "answered_by": "ada"},
                headers={"X-Request-ID": "open-req-1"},
            )
            detail = (await client.get(f"/interrupts/{interrupt_id}")).json()
    assert (detail["answered_by"], detail["request_id"]) == ("ada", "open-req-1")
    assert detail["answered_at"] is not None
