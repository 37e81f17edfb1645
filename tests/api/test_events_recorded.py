"""Answering and cancelling record their events (the webhook/SSE outbox) in the same transaction."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.services.event_feed import read_events
from app.services.events import EventCursor
from tests.api.conftest import problem_of, start


async def _events(app: FastAPI, thread_id: str) -> list[tuple[str, Any]]:
    """The thread's events as streams and webhooks get them (stored compactly, expanded)."""
    async with app.state.services.engine.connect() as conn:
        batch = await read_events(conn, EventCursor(), thread_id=thread_id)
        return [(e.type, e.payload) for e in batch.events]


async def test_resume_records_interrupt_resolved(app: FastAPI, client: httpx.AsyncClient) -> None:
    thread = await start(client, "approval")
    (question,) = thread["interrupts"]
    response = await client.post(
        f"/interrupts/{question['id']}/resume", json={"value": "yes", "answered_by": "ada"}
    )
    assert response.status_code == 202
    resolved = [p for t, p in await _events(app, thread["thread_id"]) if t == "interrupt.resolved"]
    assert len(resolved) == 1
    assert resolved[0]["interrupt_id"] == question["id"]
    assert resolved[0]["answer"] == "yes"
    assert resolved[0]["answered_by"] == "ada"
    assert resolved[0]["links"]["resume"].endswith(f"/interrupts/{question['id']}/resume")

    # A refused answer records nothing.
    problem_of(await client.post(f"/interrupts/{question['id']}/resume", json={"value": 1}), 409)
    again = [t for t, _ in await _events(app, thread["thread_id"]) if t == "interrupt.resolved"]
    assert len(again) == 1


async def test_cancel_records_thread_cancelled(app: FastAPI, client: httpx.AsyncClient) -> None:
    thread = await start(client, "parallel")
    await client.post(f"/threads/{thread['thread_id']}/cancel")
    cancelled = [p for t, p in await _events(app, thread["thread_id"]) if t == "thread.cancelled"]
    assert len(cancelled) == 1
    assert sorted(cancelled[0]["interrupt_ids"]) == sorted(i["id"] for i in thread["interrupts"])
