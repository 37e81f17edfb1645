"""Events are stored compactly (no links, ids or question copied) and read back exactly as built."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import EventRow, InterruptRow, ThreadRow
from app.services import events as ev
from app.services.deliveries import DeliveryStore
from app.services.events import NewEvent, record_events

from .helpers import add_thread, all_events

URL = "http://hitl.example/base/"
EXPIRES = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


async def _add_question(engine: AsyncEngine, tid: str, iid: str, **extra: Any) -> dict[str, Any]:
    row = {
        "id": iid,
        "thread_id": tid,
        "tenant": None,
        "graph": "g",
        "node": "ask",
        "checkpoint_id": "cp",
        "value": {"question": "ok?", "n": [1, 2.5, None]},
        "schema": {"type": "string"},
        "expires_at": EXPIRES,
        **extra,
    }
    async with engine.begin() as conn:
        await conn.execute(sa.insert(InterruptRow).values(**row))
    return row


def _built(row: dict[str, Any], thread: dict[str, Any]) -> list[NewEvent]:
    return [
        ev.interrupt_created(row, public_url=URL),
        ev.interrupt_resolved(row, answer={"a": 1}, answered_by="ann", public_url=URL),
        ev.interrupt_expired({**row, "has_default": True, "default": 3}, public_url=URL),
        ev.thread_completed(thread, values={"x": 1}, public_url=URL),
        ev.thread_failed(
            thread, error={"type": "E"}, cancelled_interrupt_ids=["i"], public_url=URL
        ),
        ev.thread_cancelled(thread, interrupt_ids=["i"], public_url=URL),
    ]


async def test_every_event_reads_back_as_built(db_engine: AsyncEngine) -> None:
    await add_thread(db_engine, "t/1", webhook="http://receiver.example/hook")
    row = await _add_question(db_engine, "t/1", "q1")
    built = _built(row, {"thread_id": "t/1", "graph": "g", "tenant": None})
    async with db_engine.begin() as conn:
        await record_events(conn, built, global_webhook_url=None)
    stored = await all_events(db_engine)
    assert [e.payload for e in stored] == [dict(e.payload) for e in built]
    assert stored[0].payload["expires_at"] == EXPIRES.isoformat()
    assert stored[0].payload["links"]["resume"] == "http://hitl.example/base/interrupts/q1/resume"
    assert stored[3].payload["links"] == {"thread": "http://hitl.example/base/threads/t%2F1"}

    due = await DeliveryStore(db_engine).claim_due(limit=10, lease_seconds=30)
    by_event = {d.event.event_id: d.event for d in due}
    assert [by_event[e.event_id].payload for e in built] == [dict(e.payload) for e in built]
    assert [by_event[e.event_id].body() for e in stored] == [e.body() for e in stored]

    # Events about a question have ids derived from it (each happens once per question).
    assert [e.event_id for e in stored] == [e.event_id for e in built]
    assert [e.event_id for e in stored[:3]] == [
        ev.question_event_id(e.type, "q1") for e in stored[:3]
    ]
    assert len({e.event_id for e in stored}) == 6

    # What is stored: no links, no ids that are columns, no copy of the question; on
    # PostgreSQL no event id that derives from the question.
    async with db_engine.connect() as conn:
        query = sa.select(EventRow.event_id, EventRow.payload).order_by(EventRow.id)
        first, *rest = (await conn.execute(query)).all()
    assert first.payload == [URL, "q1"]
    pg = db_engine.dialect.name == "postgresql"
    assert first.event_id == ("" if pg else built[0].event_id)
    assert rest[-1].event_id == built[-1].event_id


async def test_a_question_deleted_with_its_thread_leaves_its_fields_null(
    db_engine: AsyncEngine,
) -> None:
    await add_thread(db_engine, "t1")
    row = await _add_question(db_engine, "t1", "q1")
    async with db_engine.begin() as conn:
        await record_events(
            conn, [ev.interrupt_created(row, public_url=URL)], global_webhook_url=None
        )
        await conn.execute(sa.delete(ThreadRow).where(ThreadRow.thread_id == "t1"))
    (created,) = await all_events(db_engine)
    assert created.payload["interrupt_id"] == "q1" and created.payload["value"] is None
    assert created.payload["links"]["interrupt"] == "http://hitl.example/base/interrupts/q1"


async def test_payloads_stored_in_full_still_read(db_engine: AsyncEngine) -> None:
    await add_thread(db_engine, "t1")
    full = {"thread_id": "t1", "graph": "g", "interrupt_id": "q", "value": 1, "links": {}}
    # (a payload stored in full is an object; the compact form is an array)
    async with db_engine.begin() as conn:
        await conn.execute(
            sa.insert(EventRow).values(
                event_id="e1", type="interrupt.created", thread_id="t1", graph="g", payload=full
            )
        )
    (stored,) = await all_events(db_engine)
    assert stored.payload == full
