"""The schema's guarantees that the queue and services rely on, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.errors import wrap_db_errors
from app.db.tables import InterruptRow, RunRow, ThreadRow, utcnow
from app.errors import ConflictError

threads: sa.Table = ThreadRow.__table__  # type: ignore[assignment]
runs: sa.Table = RunRow.__table__  # type: ignore[assignment]
interrupts: sa.Table = InterruptRow.__table__  # type: ignore[assignment]


async def _thread(engine: AsyncEngine, thread_id: str = "t1") -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(threads).values(thread_id=thread_id, graph="approval", status="queued")
        )


async def test_defaults_and_aware_timestamps(db_engine: AsyncEngine) -> None:
    await _thread(db_engine)
    async with db_engine.connect() as conn:
        row = (await conn.execute(sa.select(threads))).one()
        now = (await conn.execute(sa.select(utcnow()))).scalar_one()
    assert row.metadata == {}
    assert row.created_at.tzinfo is not None and now.tzinfo is not None
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)


async def test_datetimes_are_stored_as_instants(db_engine: AsyncEngine) -> None:
    await _thread(db_engine)
    local = datetime(2025, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    async with db_engine.begin() as conn:
        await conn.execute(sa.insert(runs).values(thread_id="t1", lease_expires_at=local))
        value = (await conn.execute(sa.select(runs.c.lease_expires_at))).scalar_one()
        later = (
            await conn.execute(sa.select(sa.func.count()).where(runs.c.lease_expires_at < utcnow()))
        ).scalar_one()
    assert value == local and value.utcoffset() == timedelta(0)
    assert later == 1  # comparable with the database clock


async def test_one_active_run_per_thread(db_engine: AsyncEngine) -> None:
    await _thread(db_engine)
    async with db_engine.begin() as conn:
        await conn.execute(sa.insert(runs).values(thread_id="t1", status="done"))
        await conn.execute(sa.insert(runs).values(thread_id="t1", status="queued"))
    with pytest.raises(ConflictError):
        with wrap_db_errors():
            async with db_engine.begin() as conn:
                await conn.execute(sa.insert(runs).values(thread_id="t1", status="running"))


async def test_deleting_a_thread_cascades(db_engine: AsyncEngine) -> None:
    await _thread(db_engine)
    async with db_engine.begin() as conn:
        await conn.execute(sa.insert(runs).values(thread_id="t1"))
        await conn.execute(
            sa.insert(interrupts).values(
                id="a" * 32, thread_id="t1", graph="approval", node="n", checkpoint_id="c"
            )
        )
        await conn.execute(sa.delete(threads).where(threads.c.thread_id == "t1"))
        left = [
            (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()
            for t in (runs, interrupts)
        ]
    assert left == [0, 0]


async def test_foreign_keys_are_enforced(db_engine: AsyncEngine) -> None:
    with pytest.raises(ConflictError):
        with wrap_db_errors():
            async with db_engine.begin() as conn:
                await conn.execute(sa.insert(runs).values(thread_id="missing"))


async def test_json_null_is_distinct_from_sql_null(db_engine: AsyncEngine) -> None:
    await _thread(db_engine)
    async with db_engine.begin() as conn:
        await conn.execute(
            sa.insert(interrupts).values(
                id="b" * 32,
                thread_id="t1",
                graph="g",
                node="n",
                checkpoint_id="c",
                has_default=True,
                default=None,
                value={"q": [1, "two"]},
            )
        )
        row = (await conn.execute(sa.select(interrupts))).one()
    assert row.value == {"q": [1, "two"]} and row.default is None and row.has_default
