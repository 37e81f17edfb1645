"""``GET /`` and ``GET /inbox`` serve the page with a strict CSP that still lets its own code run."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from app.api.app import create_app
from app.config import Settings


@pytest.fixture
def app() -> FastAPI:
    return create_app(Settings(_env_file=None))


def get(app: FastAPI, path: str) -> Any:
    # Synchronous on purpose (this directory also drives Playwright's sync API, whose loop must
    # not meet pytest-asyncio's); ASGITransport runs no lifespan, and the page needs no database.
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return anyio.run(fetch)


@pytest.mark.parametrize("name", ["inbox_root", "inbox_page"])
def test_the_page_is_served_at_root_and_inbox(app: FastAPI, name: str) -> None:
    response = get(app, app.url_path_for(name))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>hitl · inbox</title>" in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_policy_pins_the_inline_script_and_style(app: FastAPI) -> None:
    response = get(app, "/inbox")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    for kind in ("script", "style"):
        [body] = re.findall(rf"<{kind}>(.*?)</{kind}>", response.text, re.DOTALL)
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"{kind}-src 'sha256-{digest}'" in policy


def test_the_page_stays_out_of_the_api_description(app: FastAPI) -> None:
    paths = (get(app, "/openapi.json")).json()["paths"]
    assert "/" not in paths and "/inbox" not in paths
