"""GET /webhooks/deliveries and POST /webhooks/deliveries/{id}/retry through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import WebhookDeliveryRow
from app.services.events import record_events
from tests.api.conftest import make_registry, make_settings

from .helpers import add_thread, event
from .sse import app_with_streams


@pytest.fixture
async def client(db_url: str, db_engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = app_with_streams(make_settings(db_url), embedded_worker=False, registry=make_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as c:
            yield c


async def test_list_filter_page_and_retry_dead(
    client: httpx.AsyncClient, db_engine: AsyncEngine
) -> None:
    for i in range(3):
        await add_thread(db_engine, f"t{i}", webhook="http://receiver.example/hook")
        async with db_engine.begin() as conn:
            await record_events(conn, [event(f"t{i}")], global_webhook_url=None)
    async with db_engine.begin() as conn:  # the first one gave up
        await conn.execute(
            sa.update(WebhookDeliveryRow)
            .where(WebhookDeliveryRow.id == 1)
            .values(status="dead", attempts=8, last_status=500, last_error="HTTP 500: boom")
        )

    page = (await client.get("/webhooks/deliveries", params={"limit": 2})).json()
    assert [d["thread_id"] for d in page["deliveries"]] == ["t2", "t1"]
    assert page["next_cursor"] is not None
    rest = (
        await client.get("/webhooks/deliveries", params={"limit": 2, "cursor": page["next_cursor"]})
    ).json()
    assert [d["thread_id"] for d in rest["deliveries"]] == ["t0"] and rest["next_cursor"] is None

    dead = (await client.get("/webhooks/deliveries", params={"status": "dead"})).json()
    (item,) = dead["deliveries"]
    assert (item["status"], item["attempts"], item["last_status"]) == ("dead", 8, 500)
    assert item["event_type"] == "thread.completed" and len(item["event_id"]) == 32
    assert item["url"] == "http://receiver.example/hook" and item["next_attempt_at"] is None

    assert (await client.post(f"/webhooks/deliveries/{item['id']}/retry")).status_code == 202
    again = (await client.get("/webhooks/deliveries", params={"thread_id": "t0"})).json()
    assert [(d["status"], d["attempts"]) for d in again["deliveries"]] == [("pending", 0)]
    conflict = await client.post(f"/webhooks/deliveries/{item['id']}/retry")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert (await client.post("/webhooks/deliveries/999999/retry")).status_code == 404
    assert (await client.get("/webhooks/deliveries", params={"status": "nope"})).status_code == 422
