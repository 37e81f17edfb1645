"""Tenants: a tenant's key sees, lists, answers, cancels, deletes and streams only its own
threads and interrupts. Every route that takes a thread or interrupt id answers 404 for another
tenant's (the same 404 as for an id that does not exist) and writes nothing; an operator key
sees everything."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.db.tables import EventRow, InterruptRow, ThreadRow
from tests.access.conftest import ACME, GLOBEX, OPERATOR, engine_of, snapshot, start
from tests.api.conftest import problem_of

#: (method, path template, JSON body): every call that names a thread or an interrupt.
FOREIGN_CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/threads/{thread_id}", None),
    ("GET", "/threads/{thread_id}/interrupts", None),
    ("GET", "/threads/{thread_id}/history", None),
    ("GET", "/threads/{thread_id}/stream", None),
    ("POST", "/threads/{thread_id}/resume", {"value": "stolen"}),
    ("POST", "/threads/{thread_id}/resume?wait=true", {"value": "stolen"}),
    ("POST", "/threads/{thread_id}/resume", {"values": {"{interrupt_id}": "stolen"}}),
    ("POST", "/threads/{thread_id}/cancel", None),
    ("DELETE", "/threads/{thread_id}", None),
    ("GET", "/interrupts/{interrupt_id}", None),
    ("POST", "/interrupts/{interrupt_id}/resume", {"value": "stolen"}),
    ("POST", "/interrupts/{interrupt_id}/resume?wait=true", {"value": "stolen"}),
]


def _fill(template: Any, thread_id: str, interrupt_id: str) -> Any:
    if isinstance(template, str):
        return template.replace("{thread_id}", thread_id).replace("{interrupt_id}", interrupt_id)
    if isinstance(template, dict):
        return {
            _fill(k, thread_id, interrupt_id): _fill(v, thread_id, interrupt_id)
            for k, v in template.items()
        }
    return template


def test_every_route_with_an_id_is_tried(keyed_app: FastAPI) -> None:
    tried = {(m, p.split("?")[0]) for m, p, _ in FOREIGN_CALLS}
    for route in keyed_app.routes:
        if not isinstance(route, APIRoute):
            continue
        if "{thread_id}" in route.path or "{interrupt_id}" in route.path:
            for method in route.methods - {"HEAD"}:
                assert (method, route.path) in tried, f"untested for tenants: {method} {route.path}"


async def test_another_tenants_ids_are_404_and_nothing_changes(
    client: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    acme = await start(client, ACME)
    thread_id, interrupt_id = acme["thread_id"], acme["interrupts"][0]["id"]
    await start(client, GLOBEX)  # globex has work of its own
    before = await snapshot(engine_of(keyed_app))

    for method, template, body in FOREIGN_CALLS:
        url = _fill(template, thread_id, interrupt_id)
        for extra in ({}, {"Idempotency-Key": "same-key"}):
            response = await client.request(
                method, url, json=_fill(body, thread_id, interrupt_id), headers={**GLOBEX, **extra}
            )
            problem = problem_of(response, 404)
            # The same answer as for an id nobody has: nothing says the id exists.
            missing = await client.request(
                method,
                _fill(template, "no-such-thread", "no-such-interrupt"),
                json=_fill(body, "no-such-thread", "no-such-interrupt"),
                headers=GLOBEX,
            )
            absent = problem_of(missing, 404)
            assert problem["code"] == absent["code"], (method, url)
            assert problem["title"] == absent["title"]
            assert "acme" not in response.text

    assert await snapshot(engine_of(keyed_app)) == before
    mine = (await client.get(f"/threads/{thread_id}", headers=ACME)).json()
    assert mine["status"] == "interrupted"
    assert [i["id"] for i in mine["interrupts"]] == [interrupt_id]


async def test_lists_show_only_the_tenants_own(
    client: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    acme = await start(client, ACME, metadata={"team": "red"})
    globex = await start(client, GLOBEX, metadata={"team": "red"})
    ops = await start(client, OPERATOR, metadata={"team": "red"})
    ids = {"acme": acme["thread_id"], "globex": globex["thread_id"], "ops": ops["thread_id"]}

    async def thread_ids(headers: dict[str, str], **params: str) -> set[str]:
        response = await client.get("/threads", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {t["thread_id"] for t in response.json()["threads"]}

    async def interrupt_threads(headers: dict[str, str], **params: str) -> set[str]:
        response = await client.get("/interrupts", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return {i["thread_id"] for i in response.json()["interrupts"]}

    for params in ({}, {"status": "interrupted"}, {"graph": "approval"}, {"metadata.team": "red"}):
        assert await thread_ids(GLOBEX, **params) == {ids["globex"]}
        assert await thread_ids(ACME, **params) == {ids["acme"]}
        assert await thread_ids(OPERATOR, **params) == set(ids.values())
    for params in ({}, {"graph": "approval"}, {"node": "approval_node"}):
        assert await interrupt_threads(GLOBEX, **params) == {ids["globex"]}
        assert await interrupt_threads(OPERATOR, **params) == set(ids.values())
    assert await interrupt_threads(GLOBEX, thread_id=ids["acme"]) == set()

    # Pages never reach into another tenant's rows either.
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/threads", params=params, headers=ACME)).json()
        seen += [t["thread_id"] for t in page["threads"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids["acme"]]

    # The rows carry the tenant of the key that created them (None: an operator's).
    async with engine_of(keyed_app).connect() as conn:
        tenants = dict((await conn.execute(sa.select(ThreadRow.thread_id, ThreadRow.tenant))).all())
        asked = dict(
            (await conn.execute(sa.select(InterruptRow.thread_id, InterruptRow.tenant))).all()
        )
    assert tenants == {ids["acme"]: "acme", ids["globex"]: "globex", ids["ops"]: None}
    assert asked == tenants


async def test_operator_sees_reads_and_answers_every_tenant(client: httpx.AsyncClient) -> None:
    acme = await start(client, ACME)
    thread_id, interrupt_id = acme["thread_id"], acme["interrupts"][0]["id"]
    assert (await client.get(f"/threads/{thread_id}", headers=OPERATOR)).status_code == 200
    assert (await client.get(f"/threads/{thread_id}/history", headers=OPERATOR)).status_code == 200
    assert (await client.get(f"/interrupts/{interrupt_id}", headers=OPERATOR)).status_code == 200
    done = await client.post(
        f"/interrupts/{interrupt_id}/resume",
        params={"wait": "true"},
        json={"value": "ok"},
        headers=OPERATOR,
    )
    assert done.status_code == 202, done.text
    assert done.json()["status"] == "completed"
    detail = (await client.get(f"/interrupts/{interrupt_id}", headers=ACME)).json()
    assert detail["answered_by"] == "ops"


async def test_the_owner_can_do_everything_the_others_cannot(client: httpx.AsyncClient) -> None:
    acme = await start(client, ACME)
    thread_id = acme["thread_id"]
    for path in ("", "/interrupts", "/history"):
        assert (await client.get(f"/threads/{thread_id}{path}", headers=ACME)).status_code == 200
    resumed = await client.post(
        f"/threads/{thread_id}/resume", params={"wait": "true"}, json={"value": "y"}, headers=ACME
    )
    assert resumed.json()["status"] == "completed"
    other = await start(client, ACME)
    cancelled = await client.post(f"/threads/{other['thread_id']}/cancel", headers=ACME)
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.delete(f"/threads/{thread_id}", headers=ACME)).status_code == 204
    problem_of(await client.get(f"/threads/{thread_id}", headers=ACME), 404)


async def test_a_taken_thread_id_says_nothing_about_its_owner(
    client: httpx.AsyncClient, keyed_app: FastAPI
) -> None:
    await start(client, ACME, thread_id="order-77")
    before = await snapshot(engine_of(keyed_app))
    taken = problem_of(
        await client.post(
            "/threads", json={"graph": "approval", "thread_id": "order-77"}, headers=GLOBEX
        ),
        409,
        "thread_exists",
    )
    assert "approval" not in taken["detail"] and "acme" not in str(taken)
    assert await snapshot(engine_of(keyed_app)) == before
    # The owner and the operator get the existing thread back, as for any repeated id.
    for headers in (ACME, OPERATOR):
        again = await client.post(
            "/threads", json={"graph": "approval", "thread_id": "order-77"}, headers=headers
        )
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "interrupted"


async def test_idempotency_keys_never_replay_another_tenants_response(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "shared-key-1"}
    first = await client.post("/threads", json={"graph": "approval"}, headers={**ACME, **headers})
    assert first.status_code == 201
    second = await client.post(
        "/threads", json={"graph": "approval"}, headers={**GLOBEX, **headers}
    )
    assert second.status_code == 201, second.text  # its own new thread, not acme's replayed
    assert second.json()["thread_id"] != first.json()["thread_id"]
    replay = await client.post("/threads", json={"graph": "approval"}, headers={**ACME, **headers})
    assert replay.json()["thread_id"] == first.json()["thread_id"]


async def test_events_carry_the_tenant(client: httpx.AsyncClient, keyed_app: FastAPI) -> None:
    """Streams and webhooks filter events by tenant: every event of a tenant's thread has it."""
    acme = await start(client, ACME)
    await client.post(
        f"/threads/{acme['thread_id']}/resume",
        params={"wait": "true"},
        json={"value": "y"},
        headers=ACME,
    )
    async with engine_of(keyed_app).connect() as conn:
        rows = (
            await conn.execute(
                sa.select(EventRow.type, EventRow.tenant).where(
                    EventRow.thread_id == acme["thread_id"]
                )
            )
        ).all()
    assert {t for _, t in rows} == {"acme"}
    assert {"interrupt.created", "interrupt.resolved", "thread.completed"} <= {e for e, _ in rows}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer key-acme-0000000002"}])
async def test_no_or_wrong_key_is_401_everywhere(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, template, body in FOREIGN_CALLS:
        response = await client.request(
            method, _fill(template, "t", "i"), json=_fill(body, "t", "i"), headers=headers
        )
        problem_of(response, 401, "unauthorized")
