"""Optional API keys: with HITL_API_KEYS set, every call but /healthz needs a bearer key."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from fastapi import FastAPI

from tests.api.conftest import problem_of


async def test_api_keys(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory(api_keys="first-key, second-key")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            assert (await client.get("/healthz")).status_code == 200
            for path in ("/threads", "/interrupts", "/graphs", "/readyz", "/metrics"):
                missing = problem_of(await client.get(path), 401, "unauthorized")
                assert missing["status"] == 401
            response = await client.get("/threads")
            assert response.headers["www-authenticate"] == "Bearer"
            wrong = await client.get("/threads", headers={"Authorization": "Bearer nope"})
            problem_of(wrong, 401, "unauthorized")
            basic = await client.get("/threads", headers={"Authorization": "Basic second-key"})
            problem_of(basic, 401)
            problem_of(await client.post("/threads", json={"graph": "approval"}), 401)
            for key in ("first-key", "second-key"):
                ok = await client.get("/threads", headers={"Authorization": f"Bearer {key}"})
                assert ok.status_code == 200, ok.text
            started = await client.post(
                "/threads",
                json={"graph": "approval"},
                headers={"Authorization": "Bearer first-key"},
            )
            assert started.status_code == 201


async def test_no_keys_means_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/threads")).status_code == 200
