"""Tenants see only their own threads' events and webhook deliveries (others: 404 / nothing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.app import create_app
from app.db.tables import WebhookDeliveryRow
from app.services.events import NewEvent, record_events
from tests.api.conftest import make_registry, make_settings

from .helpers import add_thread
from .sse import serving, stream

KEYS = "ops=ops-key-000001,acme-bot:acme=acme-key-000001,globex-bot:globex=globex-key-000001"
OPS = {"Authorization": "Bearer ops-key-000001"}
ACME = {"Authorization": "Bearer acme-key-000001"}
GLOBEX = {"Authorization": "Bearer globex-key-000001"}


@pytest.fixture
async def base_url(db_url: str) -> AsyncIterator[str]:
    settings = make_settings(db_url, api_keys=KEYS)
    app = create_app(settings, embedded_worker=False, registry=make_registry())
    async with serving(app) as url:
        yield url


async def emit(engine: AsyncEngine, tid: str, tenant: str, n: int) -> None:
    async with engine.begin() as conn:
        event = NewEvent("interrupt.created", tid, "g", tenant, {"thread_id": tid, "n": n})
        await record_events(conn, [event], global_webhook_url="http://receiver.example/")


async def test_streams_and_deliveries_are_per_tenant(base_url: str, db_engine: AsyncEngine) -> None:
    await add_thread(db_engine, "a1", tenant="acme")
    await add_thread(db_engine, "g1", tenant="globex")
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        assert (await client.get("/interrupts/stream")).status_code == 401
        assert (await client.get("/threads/g1/stream", headers=ACME)).status_code == 404
        async with (
            stream(client, "/interrupts/stream", headers=ACME) as acme,
            stream(client, "/interrupts/stream", headers=OPS) as ops,
            stream(client, "/threads/a1/stream", headers=ACME) as acme_thread,
        ):
            await emit(db_engine, "g1", "globex", 1)
            await emit(db_engine, "a1", "acme", 2)
            await emit(db_engine, "g1", "globex", 3)
            await emit(db_engine, "a1", "acme", 4)
            assert [m.data["data"]["n"] for m in await acme.take(2)] == [2, 4]
            assert [m.data["data"]["n"] for m in await ops.take(4)] == [1, 2, 3, 4]
            assert [m.data["data"]["n"] for m in await acme_thread.take(2)] == [2, 4]

        mine = (await client.get("/webhooks/deliveries", headers=ACME)).json()["deliveries"]
        assert {d["thread_id"] for d in mine} == {"a1"} and len(mine) == 2
        every = (await client.get("/webhooks/deliveries", headers=OPS)).json()["deliveries"]
        assert len(every) == 4
        async with db_engine.begin() as conn:
            await conn.execute(sa.update(WebhookDeliveryRow).values(status="dead"))
        globex_delivery = next(d["id"] for d in every if d["thread_id"] == "g1")
        retry = f"/webhooks/deliveries/{globex_delivery}/retry"
        assert (await client.post(retry, headers=ACME)).status_code == 404
        assert (await client.post(retry, headers=GLOBEX)).status_code == 202
