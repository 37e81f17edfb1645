"""Plain-SQL probes for queue tests (what the rows say, by the database clock)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import RunRow
from app.queue import RunId

#: add_thread(thread_id, *, graph="g", input=None) -> the queued run's id
AddThread = Callable[..., Awaitable[RunId]]


async def fetch_run(engine: AsyncEngine, run_id: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(RunRow.__table__).where(RunRow.id == run_id)))
            .mappings()
            .one()
        )
    return dict(row)


async def find_run(engine: AsyncEngine, run_id: int) -> dict[str, Any] | None:
    """The run's row, or None: a finished run keeps no row."""
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(RunRow.__table__).where(RunRow.id == run_id)))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


async def thread_status(engine: AsyncEngine, thread_id: str) -> str:
    async with engine.connect() as conn:
        status = await conn.scalar(
            sa.text("SELECT status FROM threads WHERE thread_id = :t"), {"t": thread_id}
        )
    return str(status)


async def expire_leases(engine: AsyncEngine) -> None:
    """Move every running lease into the past, by the database clock."""
    past = (
        "strftime('%Y-%m-%d %H:%M:%f', 'now', '-60 seconds')"
        if engine.dialect.name == "sqlite"
        else "now() - interval '60 seconds'"
    )
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(f"UPDATE runs SET lease_expires_at = {past} WHERE status = 'running'")
        )
