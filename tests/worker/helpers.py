"""Test-side stand-ins for the API's writes (start, answer, cancel) and row probes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.checkpoint.serde import encode
from app.db.tables import CheckpointRow, InterruptRow, RunRow, ThreadRow, utcnow
from app.queue import RunId, RunQueue


async def start_thread(
    engine: AsyncEngine, queue: RunQueue, graph: str, tid: str, input: Any = None
) -> RunId:
    """Insert a thread and queue its first run in one transaction (what POST /threads does)."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(ThreadRow).values(
                thread_id=tid,
                graph=graph,
                status="queued",
                input=encode({"tid": tid} if input is None else input),
                next=[],
            )
        )
        return await queue.enqueue(conn, tid)


async def answer(engine: AsyncEngine, queue: RunQueue, tid: str, answers: dict[str, Any]) -> None:
    """Answer pending interrupts (compare-and-set) and queue a run: what a resume does."""
    async with engine.begin() as conn:
        for iid, value in answers.items():
            won = (
                await conn.execute(
                    sa.update(InterruptRow)
                    .where(InterruptRow.id == iid, InterruptRow.status == "pending")
                    .values(status="answered", answer=value, answered_at=utcnow())
                    .returning(InterruptRow.id)
                )
            ).first()
            assert won is not None, f"interrupt {iid} is not pending"
        await conn.execute(
            sa.update(ThreadRow)
            .where(ThreadRow.thread_id == tid, ThreadRow.status == "interrupted")
            .values(status="queued")
        )
        await queue.enqueue(conn, tid)


async def cancel_thread(engine: AsyncEngine, tid: str) -> None:
    """What the cancel use case writes: thread cancelled, pending questions withdrawn."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(ThreadRow).where(ThreadRow.thread_id == tid).values(status="cancelled")
        )
        await conn.execute(
            sa.update(InterruptRow)
            .where(InterruptRow.thread_id == tid, InterruptRow.status == "pending")
            .values(status="cancelled")
        )
        await conn.execute(
            sa.update(RunRow)
            .where(RunRow.thread_id == tid, RunRow.status == "queued")
            .values(status="cancelled")
        )


async def thread(engine: AsyncEngine, tid: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(ThreadRow.__table__).where(ThreadRow.thread_id == tid)))
            .mappings()
            .one()
        )
    return dict(row)


async def interrupts(engine: AsyncEngine, tid: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    sa.select(InterruptRow.__table__)
                    .where(InterruptRow.thread_id == tid)
                    .order_by(InterruptRow.created_at, InterruptRow.id)
                )
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


async def pending_ids(engine: AsyncEngine, tid: str) -> list[str]:
    return [i["id"] for i in await interrupts(engine, tid) if i["status"] == "pending"]


async def runs(engine: AsyncEngine, tid: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(RunRow.__table__).order_by(RunRow.id)
    if tid is not None:
        query = query.where(RunRow.thread_id == tid)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query)).mappings().all()]


async def checkpoint_ids(engine: AsyncEngine, tid: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(CheckpointRow.checkpoint_id)
            .where(CheckpointRow.thread_id == tid, CheckpointRow.ns == "")
            .order_by(CheckpointRow.checkpoint_id)
        )
        return [r[0] for r in rows]


async def statuses(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(ThreadRow.status, sa.func.count()).group_by(ThreadRow.status)
        )
        return {r[0]: r[1] for r in rows}
