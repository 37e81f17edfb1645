"""The API under test: the real ASGI app on a real database (SQLite and PostgreSQL), with its
embedded worker running in the test's event loop, reached through ``httpx.AsyncClient``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.app import create_app
from app.config import Settings
from app.graphs.registry import GraphRegistry
from app.graphs.review import graph as review_graph
from tests.api.graphs import test_graphs

MAX_BODY = 64 * 1024


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": db_url,
        "wait_max_seconds": 10.0,
        "max_body_bytes": MAX_BODY,
        "poll_seconds": 0.05,
        "lease_seconds": 5.0,
        "worker_concurrency": 4,
        "shutdown_grace_seconds": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_registry() -> GraphRegistry:
    return GraphRegistry({**test_graphs(), "review": review_graph})


@pytest.fixture
def app_factory(db_url: str) -> Callable[..., FastAPI]:
    def factory(*, embedded_worker: bool = True, **overrides: Any) -> FastAPI:
        return create_app(
            make_settings(db_url, **overrides),
            embedded_worker=embedded_worker,
            registry=make_registry(),
        )

    return factory


@pytest.fixture
async def app(app_factory: Callable[..., FastAPI]) -> AsyncIterator[FastAPI]:
    application = app_factory()
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as c:
        yield c


def problem_of(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is a problem+json with this status (and code); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail", "instance", "code"):
        assert member in body, body
    if code is not None:
        assert body["code"] == code, body
    return body


async def start(client: httpx.AsyncClient, graph: str, input: Any = None, **extra: Any) -> Any:
    """POST /threads?wait=true and return the settled thread."""
    response = await client.post(
        "/threads", params={"wait": "true"}, json={"graph": graph, "input": input, **extra}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()
