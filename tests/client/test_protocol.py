"""The client's I/O-free parts: error mapping, the SSE decoder, what a request carries."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app import client as c
from app.client.errors import error_for
from app.client.sse import SSEDecoder


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, c.AuthError),
        (403, c.AuthError),
        (404, c.NotFoundError),
        (409, c.ConflictError),
        (413, c.PayloadTooLargeError),
        (422, c.ValidationError),
        (503, c.UnavailableError),
        (500, c.ServerError),
        (418, c.HitlError),
    ],
)
def test_problem_statuses_map_to_typed_errors(status: int, cls: type[c.HitlError]) -> None:
    problem = {"status": status, "code": "some_code", "detail": "what happened"}
    error = error_for(status, problem)
    assert type(error) is cls and isinstance(error, c.HitlError)
    assert (error.status, error.code, error.detail, error.problem) == (
        status,
        "some_code",
        "what happened",
        problem,
    )


def test_a_non_json_error_body_still_gives_a_detail() -> None:
    error = error_for(502, None, "<html>Bad gateway</html>")
    assert isinstance(error, c.ServerError) and error.detail == "<html>Bad gateway</html>"
    assert error_for(404, None).detail == "No such thread, interrupt or graph."


def test_validation_errors_are_listed() -> None:
    items = [{"loc": ["value", "count"], "msg": "-1 is less than the minimum of 0"}]
    error = error_for(422, {"code": "invalid_answer", "errors": items})
    assert isinstance(error, c.ValidationError) and error.errors == items
    assert c.ValidationError("x").errors == []


def test_sse_decoder_follows_the_event_stream_rules() -> None:
    decoder = SSEDecoder()
    lines = [
        ": keep-alive",
        "",
        "id: 7",
        "event: interrupt.created",
        'data: {"thread_id": "t1",',
        'data: "interrupt_ids": ["i1"]}',
        "",
        "retry: 1500",
        "data:plain text",
        "",
        "event: nothing",
        "",
    ]
    events = [e for e in map(decoder.feed, lines) if e is not None]
    assert events == [
        c.Event("7", "interrupt.created", {"thread_id": "t1", "interrupt_ids": ["i1"]}),
        c.Event("7", "message", "plain text"),  # the last id carries over
    ]
    assert decoder.retry_ms == 1500 and decoder.last_event_id == "7"


def test_requests_carry_the_key_the_body_and_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []
    thread = {
        "thread_id": "t/1",
        "graph": "g",
        "status": "queued",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    }

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=thread)

    transport = httpx.MockTransport(answer)
    with c.HitlClient("http://hitl.test/", api_key="s3cret", transport=transport) as hitl:
        result = hitl.resume("t/1", None, wait=True, idempotency_key="k1", answered_by="ada")
    assert result.thread_id == "t/1" and result.interrupts == []
    [request] = seen
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["Idempotency-Key"] == "k1"
    assert request.url.raw_path == b"/threads/t%2F1/resume?wait=true"  # ids stay one segment
    body: dict[str, Any] = json.loads(request.content)
    assert body == {"value": None, "answered_by": "ada"}  # None is an answer, not "absent"


async def test_the_async_client_sends_the_same_request() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"threads": [], "next_cursor": None})

    transport = httpx.MockTransport(answer)
    async with c.AsyncHitlClient("http://hitl.test", api_key="k", transport=transport) as hitl:
        page = await hitl.list(status="interrupted", metadata={"team": "ops"}, limit=5)
    assert page == c.Page([], None)
    assert seen[0].headers["Authorization"] == "Bearer k"
    assert dict(seen[0].url.params) == {
        "status": "interrupted",
        "limit": "5",
        "metadata.team": "ops",
    }
