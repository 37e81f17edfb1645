"""Bad input (SPEC section 6): a precise 4xx problem+json, nothing changed, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.api.app import create_app
from tests.api.conftest import MAX_BODY, make_registry, make_settings, problem_of, start


async def _count_threads(client: httpx.AsyncClient) -> int:
    return len((await client.get("/threads", params={"limit": 500})).json()["threads"])


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/threads", content=b'{"graph": "approval",', headers={"content-type": "application/json"}
    )
    body = problem_of(response, 422, "malformed_json")
    assert body["errors"][0]["type"] == "json_invalid"
    assert await _count_threads(client) == 0


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"graph": 5}, ["body", "graph"]),
        ({"graph": "approval", "metadata": []}, ["body", "metadata"]),
        ({"graph": "approval", "thread_id": "has space"}, ["body", "thread_id"]),
        ({"graph": "approval", "thread_id": ""}, ["body", "thread_id"]),
        ({"graph": "approval", "unknown_option": True}, ["body", "unknown_option"]),
        ({"input": 1}, ["body", "graph"]),
        ([], ["body"]),
        ("approval", ["body"]),
    ],
)
async def test_wrong_types_on_start(
    client: httpx.AsyncClient, payload: Any, loc: list[str]
) -> None:
    body = problem_of(await client.post("/threads", json=payload), 422, "validation_error")
    assert body["errors"][0]["loc"] == loc
    assert await _count_threads(client) == 0


async def test_unknown_graph_is_404(client: httpx.AsyncClient) -> None:
    body = problem_of(await client.post("/threads", json={"graph": "nope"}), 404, "graph_not_found")
    assert body["graph"] == "nope"
    assert "approval" in body["available"]
    problem_of(await client.get("/graphs/nope"), 404, "graph_not_found")
    assert await _count_threads(client) == 0


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"value": 1, "values": {"a" * 32: 1}},
        {"values": {}},
        {"values": []},
        {"values": None},
        {"value": 1, "extra": 2},
        {"value": 1, "answered_by": 7},
    ],
)
async def test_bad_resume_bodies(client: httpx.AsyncClient, payload: Any) -> None:
    thread = await start(client, "approval")
    response = await client.post(f"/threads/{thread['thread_id']}/resume", json=payload)
    problem_of(response, 422)
    assert (await client.get(f"/threads/{thread['thread_id']}")).json()["status"] == "interrupted"


async def test_a_null_answer_is_an_answer(client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    response = await client.post(
        f"/threads/{thread['thread_id']}/resume", params={"wait": "true"}, json={"value": None}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "completed"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/threads", {"limit": "501"}),
        ("/threads", {"limit": "0"}),
        ("/threads", {"limit": "ten"}),
        ("/threads", {"status": "sleeping"}),
        ("/threads", {"cursor": "not-a-cursor"}),
        ("/threads", {"cursor": "W10"}),
        ("/threads", {"metadata.bad key": "x"}),
        ("/interrupts", {"status": "open"}),
        ("/interrupts", {"older_than": "yesterday"}),
        ("/interrupts", {"cursor": "%%%"}),
        ("/interrupts", {"limit": "1000"}),
    ],
)
async def test_bad_query_parameters(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 422, response.text
    problem_of(response, 422)


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    big = {"graph": "approval", "input": {"blob": "x" * (MAX_BODY + 10)}}
    body = problem_of(await client.post("/threads", json=big), 413, "payload_too_large")
    assert body["max_bytes"] == MAX_BODY

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"graph": "approval", "input": "'
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"y" * 1024
        yield b'"}'

    chunked = await client.post(
        "/threads", content=chunks(), headers={"content-type": "application/json"}
    )
    problem_of(chunked, 413, "payload_too_large")
    assert await _count_threads(client) == 0

    async def small() -> AsyncIterator[bytes]:
        yield b'{"graph": '
        yield b'"approval"}'

    fits = await client.post(
        "/threads", content=small(), headers={"content-type": "application/json"}
    )
    assert fits.status_code == 201, fits.text


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    problem_of(await client.get("/nowhere"), 404, "route_not_found")
    problem_of(await client.delete("/graphs"), 405, "method_not_allowed")
    problem_of(await client.get("/threads/does-not-exist"), 404, "thread_not_found")
    problem_of(await client.get("/threads/does-not-exist/interrupts"), 404, "thread_not_found")


async def test_database_down_is_503(tmp_path: Any) -> None:
    settings = make_settings("postgresql://nobody@127.0.0.1:1/nothing")
    app = create_app(settings, embedded_worker=False, registry=make_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = problem_of(await client.get("/readyz"), 503, "unavailable")
            assert "nobody" not in str(ready)  # driver details stay in the logs
            problem_of(await client.get("/threads"), 503, "unavailable")
            response = await client.post("/threads", json={"graph": "approval"})
            problem_of(response, 503, "unavailable")
            assert response.headers["retry-after"] == "1"


class _BrokenGraph:
    """Looks like a compiled graph, but drawing it fails: an unexpected server-side error."""

    def with_checkpointer(self, saver: Any) -> Any:
        return self

    def get_graph(self) -> Any:
        raise RuntimeError("secret internal detail")


async def test_unexpected_errors_are_a_500_problem_without_internals(sqlite_url: str) -> None:
    registry = make_registry()
    registry = type(registry)({"broken": _BrokenGraph(), "approval": registry.get("approval")})
    app = create_app(make_settings(sqlite_url), embedded_worker=False, registry=registry)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            response = await client.get("/graphs/broken", headers={"X-Request-ID": "trace-me"})
            body = problem_of(response, 500, "internal_error")
            assert body["request_id"] == "trace-me"
            assert "secret" not in response.text
            assert (await client.get("/healthz")).status_code == 200
