"""Rows and probes the event tests share (plain SQL through the models, no mocks)."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import EventRow, ThreadRow, WebhookDeliveryRow
from app.services.event_feed import read_events
from app.services.events import EventCursor, NewEvent, StoredEvent


async def add_thread(
    engine: AsyncEngine,
    tid: str,
    *,
    webhook: str | None = None,
    tenant: str | None = None,
    status: str = "interrupted",
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(ThreadRow).values(
                thread_id=tid, graph="g", status=status, webhook=webhook, tenant=tenant, next=[]
            )
        )


def event(tid: str, type_: str = "thread.completed", **payload: Any) -> NewEvent:
    return NewEvent(type_, tid, "g", None, {"thread_id": tid, **payload})


async def all_events(engine: AsyncEngine, **filters: Any) -> list[StoredEvent]:
    """Every final event; waits (briefly) for transactions still in flight to finish."""
    for _ in range(200):
        async with engine.connect() as conn:
            batch = await read_events(conn, EventCursor(), **filters)
        if batch.held_by is None:
            break
        await asyncio.sleep(0.01)
    return batch.events


async def deliveries(engine: AsyncEngine) -> list[dict[str, Any]]:
    query = (
        sa.select(WebhookDeliveryRow.__table__, EventRow.event_id.label("uuid"))
        .join(EventRow, EventRow.id == WebhookDeliveryRow.event_id)
        .order_by(WebhookDeliveryRow.id)
    )
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings()]
