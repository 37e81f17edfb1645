"""Rows for deadline tests: threads paused on questions whose deadline the database clock sets."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import EventRow, InterruptRow, RunRow, ThreadRow
from app.queue.sql import seconds_from_now
from app.services.event_feed import stored_events

_NO_DEFAULT = object()


async def paused_thread(
    engine: AsyncEngine,
    tid: str,
    *,
    timeouts: list[float | None],
    default: Any = _NO_DEFAULT,
    status: str = "interrupted",
) -> list[str]:
    """A thread waiting on one question per entry of ``timeouts`` (seconds; None: no deadline)."""
    ids = [uuid.uuid4().hex for _ in timeouts]
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(ThreadRow).values(thread_id=tid, graph="g", status=status, next=["ask"])
        )
        for iid, timeout in zip(ids, timeouts, strict=True):
            await conn.execute(
                sa.insert(InterruptRow).values(
                    id=iid,
                    thread_id=tid,
                    graph="g",
                    node="ask",
                    checkpoint_id="c1",
                    value={"question": "approve?"},
                    has_default=default is not _NO_DEFAULT,
                    default=None if default is _NO_DEFAULT else default,
                    expires_at=seconds_from_now(sa.literal(timeout, sa.Float)),
                )
            )
    return ids


async def interrupt(engine: AsyncEngine, iid: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(InterruptRow.__table__).where(InterruptRow.id == iid)))
            .mappings()
            .one()
        )
    return dict(row)


async def thread(engine: AsyncEngine, tid: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(ThreadRow.__table__).where(ThreadRow.thread_id == tid)))
            .mappings()
            .one()
        )
    return dict(row)


async def runs(engine: AsyncEngine, tid: str) -> list[str]:
    async with engine.connect() as conn:
        return list(
            (
                await conn.execute(
                    sa.select(RunRow.status).where(RunRow.thread_id == tid).order_by(RunRow.id)
                )
            ).scalars()
        )


async def event_types(engine: AsyncEngine, tid: str | None = None) -> list[tuple[str, Any]]:
    """(type, payload) of the recorded events, payloads as streams and webhooks get them."""
    query = sa.select(EventRow.__table__).order_by(EventRow.tx, EventRow.id)
    if tid is not None:
        query = query.where(EventRow.thread_id == tid)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
        return [(e.type, e.payload) for e in await stored_events(conn, rows)]
