"""The client's logic without I/O: which request each call makes and how its answer is read.

Every operation is a *flow*, a generator that yields a `Call` (send this request, send me back the
response) or a `Sleep` (wait this long), and returns the result. `HitlClient` and
`AsyncHitlClient` only drive flows over their httpx transport, so the two cannot drift apart:
a request, a parser or the polling of `wait` is written once, here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from app.client.errors import TransportError, WaitTimeoutError, error_for
from app.client.models import Checkpoint, Graph, Interrupt, Page, Thread

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0  # above the service's default wait bound (HITL_WAIT_MAX_SECONDS, 30 s)


class _Missing:
    """No value given (``None`` is a valid answer, so it cannot mean "absent")."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request; ``json=None`` sends no body."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Flow = Generator[Call | Sleep, Any, T]


def client_options(
    base_url: str, api_key: str | None, timeout: float | None, headers: Mapping[str, str] | None
) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client`` / ``httpx.AsyncClient``."""
    merged = {"Accept": "application/json", "User-Agent": "hitl-client/0.1"}
    merged.update(headers or {})
    if api_key:
        merged["Authorization"] = f"Bearer {api_key}"
    return {"base_url": base_url.rstrip("/"), "headers": merged, "timeout": timeout}


def transport_error(exc: httpx.TransportError, base_url: object) -> TransportError:
    return TransportError(f"cannot reach the service at {base_url}: {type(exc).__name__}: {exc}")


def checked(response: httpx.Response) -> httpx.Response:
    """The response itself when it succeeded; the typed `HitlError` otherwise (body already read)."""
    if response.status_code < 400:
        return response
    try:
        body = response.json()
    except ValueError:
        body = None
    raise error_for(response.status_code, body, response.text)


def _seg(value: str) -> str:
    """One path segment (ids are arbitrary strings: never let them add segments)."""
    return quote(value, safe="")


def _params(**values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or value is False:
            continue
        out[key] = (
            value.isoformat()
            if isinstance(value, datetime)
            else ("true" if value is True else value)
        )
    return out


def _headers(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


def _request(call: Call, parse: Callable[[httpx.Response], T]) -> Flow[T]:
    response = yield call
    return parse(response)


def _thread(response: httpx.Response) -> Thread:
    return Thread.model_validate(response.json())


def _interrupt(response: httpx.Response) -> Interrupt:
    return Interrupt.model_validate(response.json())


# --- threads ------------------------------------------------------------------------------


def start(
    graph: str,
    input: Any,
    *,
    thread_id: str | None,
    metadata: Mapping[str, Any] | None,
    webhook: str | None,
    wait: bool,
    idempotency_key: str | None,
) -> Flow[Thread]:
    body: dict[str, Any] = {"graph": graph, "input": input, "metadata": dict(metadata or {})}
    if thread_id is not None:
        body["thread_id"] = thread_id
    if webhook is not None:
        body["webhook"] = webhook
    call = Call(
        "POST", "/threads", _params(wait=wait), json=body, headers=_headers(idempotency_key)
    )
    return _request(call, _thread)


def get(thread_id: str) -> Flow[Thread]:
    return _request(Call("GET", f"/threads/{_seg(thread_id)}"), _thread)


def list_threads(
    *,
    status: str | None,
    graph: str | None,
    metadata: Mapping[str, Any] | None,
    limit: int | None,
    cursor: str | None,
) -> Flow[Page[Thread]]:
    params = _params(status=status, graph=graph, limit=limit, cursor=cursor)
    for key, value in (metadata or {}).items():
        params[f"metadata.{key}"] = value

    def parse(response: httpx.Response) -> Page[Thread]:
        body = response.json()
        items = [Thread.model_validate(t) for t in body["threads"]]
        return Page(items, body.get("next_cursor"))

    return _request(Call("GET", "/threads", params), parse)


def resume(
    thread_id: str,
    value: Any,
    values: Mapping[str, Any] | None,
    *,
    answered_by: str | None,
    wait: bool,
    idempotency_key: str | None,
) -> Flow[Thread]:
    if (value is MISSING) == (values is None):
        raise TypeError("resume() takes exactly one of value= and values=")
    body: dict[str, Any] = {"value": value} if values is None else {"values": dict(values)}
    if answered_by is not None:
        body["answered_by"] = answered_by
    path = f"/threads/{_seg(thread_id)}/resume"
    call = Call("POST", path, _params(wait=wait), json=body, headers=_headers(idempotency_key))
    return _request(call, _thread)


def cancel(thread_id: str) -> Flow[Thread]:
    return _request(Call("POST", f"/threads/{_seg(thread_id)}/cancel"), _thread)


def delete(thread_id: str) -> Flow[None]:
    return _request(Call("DELETE", f"/threads/{_seg(thread_id)}"), lambda _: None)


def history(thread_id: str, *, limit: int | None, cursor: str | None) -> Flow[Page[Checkpoint]]:
    def parse(response: httpx.Response) -> Page[Checkpoint]:
        body = response.json()
        items = [Checkpoint.model_validate(c) for c in body["checkpoints"]]
        return Page(items, body.get("next_cursor"))

    path = f"/threads/{_seg(thread_id)}/history"
    return _request(Call("GET", path, _params(limit=limit, cursor=cursor)), parse)


def wait(thread_id: str, timeout: float, interval: float) -> Flow[Thread]:
    """Poll the thread until it settles: quickly at first, then every ``interval`` seconds."""
    deadline = time.monotonic() + timeout
    delay = min(0.05, interval)
    while True:
        thread: Thread = yield from get(thread_id)
        if thread.settled:
            return thread
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeoutError(
                f"thread {thread_id!r} is still {thread.status} after {timeout:g}s", thread
            )
        yield Sleep(min(delay, remaining))
        delay = min(delay * 2, interval)


# --- the inbox ----------------------------------------------------------------------------


def list_interrupts(
    *,
    status: str | None,
    graph: str | None,
    node: str | None,
    thread_id: str | None,
    older_than: datetime | None,
    expires_before: datetime | None,
    limit: int | None,
    cursor: str | None,
) -> Flow[Page[Interrupt]]:
    params = _params(
        status=status,
        graph=graph,
        node=node,
        thread_id=thread_id,
        older_than=older_than,
        expires_before=expires_before,
        limit=limit,
        cursor=cursor,
    )

    def parse(response: httpx.Response) -> Page[Interrupt]:
        body = response.json()
        items = [Interrupt.model_validate(i) for i in body["interrupts"]]
        return Page(items, body.get("next_cursor"))

    return _request(Call("GET", "/interrupts", params), parse)


def get_interrupt(interrupt_id: str) -> Flow[Interrupt]:
    return _request(Call("GET", f"/interrupts/{_seg(interrupt_id)}"), _interrupt)


def resume_interrupt(
    interrupt_id: str,
    value: Any,
    *,
    answered_by: str | None,
    wait: bool,
    idempotency_key: str | None,
) -> Flow[Thread]:
    body: dict[str, Any] = {"value": value}
    if answered_by is not None:
        body["answered_by"] = answered_by
    path = f"/interrupts/{_seg(interrupt_id)}/resume"
    call = Call("POST", path, _params(wait=wait), json=body, headers=_headers(idempotency_key))
    return _request(call, _thread)


# --- graphs and streams -------------------------------------------------------------------


def graphs() -> Flow[list[Graph]]:
    def parse(response: httpx.Response) -> list[Graph]:
        return [Graph.model_validate(g) for g in response.json()["graphs"]]

    return _request(Call("GET", "/graphs"), parse)


def graph(name: str) -> Flow[Graph]:
    return _request(Call("GET", f"/graphs/{_seg(name)}"), lambda r: Graph.model_validate(r.json()))


def stream_call(thread_id: str | None, last_event_id: str | None) -> Call:
    """The SSE request of one thread (or, with ``thread_id=None``, of the whole inbox)."""
    path = "/interrupts/stream" if thread_id is None else f"/threads/{_seg(thread_id)}/stream"
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    return Call("GET", path, headers=headers)
