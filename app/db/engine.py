"""Async engine factory: one place that knows how to connect to SQLite and PostgreSQL.

SQLite gets the pragmas that make it a reasonable multi-process store (WAL, a busy timeout,
enforced foreign keys); PostgreSQL gets a bounded pool. JSON columns are (de)serialized with
orjson on both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.config import async_database_url

__all__ = ["SQLITE_PRAGMAS", "begin_immediate", "create_engine", "is_sqlite"]

#: Applied to every new SQLite connection.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)

# Execution option that makes the next SQLite transaction take the write lock up front.
_IMMEDIATE = "hitl_begin_immediate"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _json_loads(value: Any) -> Any:
    """SQLite hands back a JSON document that is a bare number as the number itself."""
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    echo: bool = False,
) -> AsyncEngine:
    """Build an AsyncEngine from a plain URL (``sqlite:///path``, ``postgresql://...``).

    The URL is mapped to its async driver (aiosqlite, asyncpg). Pool sizes apply to
    PostgreSQL only.
    """
    async_url = async_database_url(url)
    common: dict[str, Any] = {
        "echo": echo,
        "json_serializer": _json_dumps,
        "json_deserializer": _json_loads,
    }
    if async_url.startswith("sqlite"):
        engine = create_async_engine(async_url, **common)
        _install_sqlite_hooks(engine)
        return engine
    return create_async_engine(
        async_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        **common,
    )


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for pragma in SQLITE_PRAGMAS:
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Connection) -> None:
        # The driver begins lazily (at the first write); BEGIN IMMEDIATE takes the write lock
        # now, so a read-then-write transaction cannot fail with SQLITE_BUSY midway.
        if conn.get_execution_options().get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def begin_immediate(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Like ``engine.begin()``; on SQLite the transaction holds the write lock from its start."""
    async with engine.connect() as conn:
        if is_sqlite(engine):
            conn = await conn.execution_options(**{_IMMEDIATE: True})
        async with conn.begin():
            yield conn
