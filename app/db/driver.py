"""The hot statements on PostgreSQL, sent straight to asyncpg inside SQLAlchemy's transaction.

SQLAlchemy Core spends ~80 µs of CPU per execution (cache key, parameter processing, result
metadata) on top of asyncpg's ~20 µs. A human-in-the-loop cycle runs about ten such statements
in the serving process, so `fetch` compiles each statement once (SQL text, parameter order,
bind processors from the statement's own types) and runs it on the driver connection of the
caller's `AsyncConnection`: same connection, same transaction, same JSON codecs (the engine's
orjson), same error translation (``wrap_db_errors``).

Any other database, or a SQLAlchemy whose asyncpg adapter no longer looks as expected, runs the
statement through SQLAlchemy as before: `fetch` returns the same rows either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import asyncpg
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

__all__ = ["DriverRow", "execute_many", "fetch", "fetch_alone", "fetch_one"]

#: What the asyncpg adapter of SQLAlchemy must have for statements to bypass it.
_ADAPTER_ATTRIBUTES = ("_connection", "_transaction", "_start_transaction")


class DriverRow:
    """A result row as SQLAlchemy's: ``row.name``, ``row[0]``, ``row._mapping["name"]``.

    No methods of its own, so that columns named ``values`` or ``keys`` read as columns.
    """

    __slots__ = ("_mapping",)

    def __init__(self, record: Any) -> None:
        #: The asyncpg record: read by name or position, ``keys()``/``items()``, ``dict()``.
        self._mapping = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: int) -> Any:
        return self._mapping[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._mapping)


class _Compiled:
    """A statement compiled for asyncpg: its SQL and how to build its positional arguments."""

    __slots__ = ("binds", "sql")

    def __init__(self, statement: Executable, dialect: Dialect, keys: tuple[str, ...]) -> None:
        # ``column_keys``: an INSERT without explicit values takes the columns it is given,
        # as SQLAlchemy's execution does.
        clause = cast(ClauseElement, statement)
        compiled = cast(SQLCompiler, clause.compile(dialect=dialect, column_keys=list(keys)))
        if compiled.positiontup is None:  # pragma: no cover - asyncpg is positional
            raise TypeError("expected a positional paramstyle")
        self.sql = compiled.string
        binds: list[tuple[str, bool, Any, Callable[[Any], Any] | None]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if bind.expanding:
                raise TypeError(f"{name}: expanding parameters are not supported here")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            binds.append((bind.key, bind.required, bind.value, processor))
        self.binds = tuple(binds)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for key, required, default, processor in self.binds:
            if key in params:
                value = params[key]
            elif required:
                raise sa_exc.ArgumentError(f"A value is required for bind parameter {key!r}")
            else:
                value = default
            out.append(processor(value) if processor is not None else value)
        return out


#: (id(statement), parameter names) -> (statement, compiled); statements are module-level
#: constants, and each is called with one or two sets of parameter names.
_compiled: dict[tuple[int, tuple[str, ...]], tuple[Executable, _Compiled]] = {}


def _compile(statement: Executable, dialect: Dialect, params: Mapping[str, Any]) -> _Compiled:
    keys = tuple(params)
    entry = _compiled.get((id(statement), keys))
    if entry is None or entry[0] is not statement:
        entry = (statement, _Compiled(statement, dialect, keys))
        _compiled[id(statement), keys] = entry
    return entry[1]


async def _adapter(conn: AsyncConnection) -> Any:
    """SQLAlchemy's asyncpg adapter under ``conn``, if it has the shape this module relies on."""
    adapted: Any = (await conn.get_raw_connection()).dbapi_connection
    return adapted if all(hasattr(adapted, n) for n in _ADAPTER_ATTRIBUTES) else None


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn``, inside its transaction; None: use SQLAlchemy."""
    if conn.dialect.name != "postgresql" or not conn.in_transaction():
        return None
    adapted = await _adapter(conn)
    if adapted is None:
        return None  # pragma: no cover - another SQLAlchemy version
    if adapted._transaction is None:  # SQLAlchemy begins lazily, at the first statement
        await adapted._start_transaction()
    return adapted._connection


async def fetch(
    conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]
) -> list[Any]:
    """Run ``statement`` in ``conn``'s transaction; its rows (attribute and key access)."""
    driver = await _driver(conn)
    if driver is None:
        return list((await conn.execute(statement, dict(params))).all())
    return await _run(conn, driver, statement, params)


async def _run(
    conn: AsyncConnection, driver: Any, statement: Executable, params: Mapping[str, Any]
) -> list[Any]:
    try:
        return await _run_on(driver, conn.dialect, statement, params)
    except sa_exc.OperationalError:
        await conn.invalidate()  # the connection may be gone
        raise


async def _run_on(
    driver: Any, dialect: Dialect, statement: Executable, params: Mapping[str, Any]
) -> list[Any]:
    compiled = _compile(statement, dialect, params)
    arguments = compiled.arguments(params)
    try:
        records = await driver.fetch(compiled.sql, *arguments)
    # InternalClientError: the protocol's state is lost (a connection the server ended).
    except (
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
    ) as exc:
        raise _as_sqlalchemy_error(exc, compiled.sql) from exc
    return [DriverRow(record) for record in records]


async def execute_many(
    conn: AsyncConnection, statement: Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run ``statement`` once per row of parameters in ``conn``'s transaction (no results).

    One row (the hot path: a run's checkpoint) goes to the driver; several go through
    SQLAlchemy's executemany, which batches them already.
    """
    if not rows:
        return
    driver = await _driver(conn) if len(rows) == 1 else None
    if driver is None:
        await conn.execute(statement, [dict(r) for r in rows])
        return
    await _run(conn, driver, statement, rows[0])


async def fetch_one(conn: AsyncConnection, statement: Executable, params: Mapping[str, Any]) -> Any:
    """The first row of ``statement``'s result, or None."""
    rows = await fetch(conn, statement, params)
    return rows[0] if rows else None


async def fetch_alone(
    engine: AsyncEngine, statement: Executable, params: Mapping[str, Any]
) -> list[Any]:
    """Run one statement as a transaction of its own (autocommit: no BEGIN/COMMIT round trips
    on PostgreSQL; SQLAlchemy's ``begin`` elsewhere). Its rows.

    On PostgreSQL the pool's connection is taken as it is (``raw_connection``), without the
    ``Connection`` that SQLAlchemy builds around it: that checkout cost about 40 µs of CPU more,
    and a human-in-the-loop cycle makes four of them.
    """
    if engine.dialect.name != "postgresql":
        return await _alone_through_sqlalchemy(engine, statement, params)
    pooled = await greenlet_spawn(engine.sync_engine.raw_connection)
    adapted: Any = pooled.dbapi_connection
    if not all(hasattr(adapted, n) for n in _ADAPTER_ATTRIBUTES):  # pragma: no cover
        await greenlet_spawn(pooled.close)
        return await _alone_through_sqlalchemy(engine, statement, params)
    try:
        return await _run_on(adapted._connection, engine.dialect, statement, params)
    except sa_exc.OperationalError as exc:
        await greenlet_spawn(pooled.invalidate, exc)  # the connection may be gone
        raise
    finally:
        await greenlet_spawn(pooled.close)  # back to the pool (an invalidated one is dropped)


async def _alone_through_sqlalchemy(
    engine: AsyncEngine, statement: Executable, params: Mapping[str, Any]
) -> list[Any]:
    async with engine.begin() as conn:
        return list((await conn.execute(statement, dict(params))).all())


def _as_sqlalchemy_error(exc: BaseException, sql: str) -> sa_exc.DBAPIError:
    """The error SQLAlchemy would have raised, so ``wrap_db_errors`` translates it the same."""
    state = getattr(exc, "sqlstate", None) or ""
    if state.startswith("23"):
        kind: type[sa_exc.DBAPIError] = sa_exc.IntegrityError
    elif isinstance(exc, asyncpg.PostgresError) and not state.startswith(("08", "57P", "53300")):
        kind = sa_exc.ProgrammingError
    else:
        kind = sa_exc.OperationalError
    error = kind(sql, None, cast(Exception, exc))
    return error
