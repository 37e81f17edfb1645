"""`app.db.driver`: hot statements on asyncpg directly, inside SQLAlchemy's transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import driver
from app.db.engine import create_engine
from app.db.errors import wrap_db_errors
from app.db.tables import JSON, ThreadRow
from app.errors import ConflictError

INSERT = (
    sa.insert(ThreadRow.__table__)
    .values(
        thread_id=sa.bindparam("tid"),
        graph=sa.bindparam("graph"),
        status="queued",
        values=sa.bindparam("values", type_=JSON),
        metadata=sa.bindparam("metadata", type_=JSON),
    )
    .returning(
        ThreadRow.thread_id,
        ThreadRow.status,
        ThreadRow.values,
        ThreadRow.metadata_.label("metadata_"),
        ThreadRow.created_at,
    )
)
SELECT = sa.select(ThreadRow.thread_id, ThreadRow.values).where(
    ThreadRow.thread_id == sa.bindparam("tid")
)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def test_rows_read_the_same_as_through_sqlalchemy(engine: AsyncEngine) -> None:
    params = {"tid": "t1", "graph": "g", "values": {"a": [1, None]}, "metadata": {"k": "v"}}
    async with engine.begin() as conn:
        row = await driver.fetch_one(conn, INSERT, params)
    async with engine.connect() as conn:
        stored = (await conn.execute(SELECT, params)).one()

    assert row is not None
    assert (row.thread_id, row.status, row.values, row.metadata_) == (
        "t1",
        "queued",
        {"a": [1, None]},
        {"k": "v"},
    )
    assert (row[0], row._mapping["status"], dict(row._mapping)["thread_id"]) == (
        "t1",
        "queued",
        "t1",
    )
    assert isinstance(row.created_at, datetime) and row.created_at.tzinfo is not None
    assert tuple(stored) == ("t1", {"a": [1, None]})


async def test_the_statement_runs_inside_the_callers_transaction(engine: AsyncEngine) -> None:
    params = {"tid": "t1", "graph": "g", "values": None, "metadata": {}}
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await driver.fetch(conn, INSERT, params)  # the transaction's first statement
            assert len(await driver.fetch(conn, SELECT, {"tid": "t1"})) == 1
            raise RuntimeError("roll back")
    async with engine.connect() as conn:
        assert (await conn.execute(SELECT, {"tid": "t1"})).first() is None


async def test_a_missing_parameter_is_an_error_not_null(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(sa_exc.SQLAlchemyError, match="value is required"):
            await driver.fetch(conn, SELECT, {})


async def test_database_errors_translate_as_through_sqlalchemy(engine: AsyncEngine) -> None:
    params = {"tid": "t1", "graph": "g", "values": None, "metadata": {}}
    async with engine.begin() as conn:
        await driver.fetch(conn, INSERT, params)
    with pytest.raises(ConflictError):
        with wrap_db_errors():
            async with engine.begin() as conn:
                await driver.fetch(conn, INSERT, params)  # the same primary key


async def test_outside_a_transaction_sqlalchemy_runs_it(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await driver.fetch(conn, INSERT, {"tid": "t1", "graph": "g", "values": 1, "metadata": {}})
    async with engine.connect() as conn:
        rows = await driver.fetch(conn, SELECT, {"tid": "t1"})
    assert [(r.thread_id, r.values) for r in rows] == [("t1", 1)]


async def test_a_statement_alone_commits_by_itself(engine: AsyncEngine) -> None:
    params = {"tid": "t1", "graph": "g", "values": None, "metadata": {}}
    (row,) = await driver.fetch_alone(engine, INSERT, params)
    assert row.thread_id == "t1"
    with pytest.raises(sa_exc.IntegrityError):
        await driver.fetch_alone(engine, INSERT, params)
    async with engine.connect() as conn:
        assert [tuple(r) for r in (await conn.execute(SELECT, {"tid": "t1"})).all()] == [
            ("t1", None)
        ]


async def test_postgresql_statements_do_take_the_driver_path(pg_url: str) -> None:
    """Fails when SQLAlchemy's asyncpg adapter changes shape (the code would fall back)."""
    import asyncpg

    engine = create_engine(pg_url)
    try:
        async with engine.begin() as conn:
            assert isinstance(await driver._driver(conn), asyncpg.Connection)
            rows = await driver.fetch(conn, SELECT, {"tid": "none"})
        assert rows == []
    finally:
        await engine.dispose()


async def test_a_statement_alone_gives_its_connection_back(engine: AsyncEngine) -> None:
    params = {"tid": "t1", "graph": "g", "values": None, "metadata": {}}
    pool = engine.sync_engine.pool
    await driver.fetch_alone(engine, INSERT, params)
    with pytest.raises(sa_exc.IntegrityError):
        await driver.fetch_alone(engine, INSERT, params)
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_connection_lost_under_a_statement_alone_is_dropped(pg_url: str) -> None:
    """The server ends the pooled connection: the statement fails as a database error, the
    pool forgets that connection, and the next statement gets a working one."""
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        (row,) = await driver.fetch_alone(engine, sa.text("SELECT pg_backend_pid() AS pid"), {})
        admin = create_engine(pg_url)
        async with admin.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": row.pid})
        await admin.dispose()
        with pytest.raises(sa_exc.OperationalError):
            await driver.fetch_alone(engine, SELECT, {"tid": "t1"})
        assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        (again,) = await driver.fetch_alone(engine, sa.text("SELECT pg_backend_pid() AS pid"), {})
        assert again.pid != row.pid
    finally:
        await engine.dispose()
