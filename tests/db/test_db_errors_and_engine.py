"""Error translation at the DB boundary, and the engine factory's SQLite transaction modes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from app.db.engine import begin_immediate, create_engine
from app.db.errors import translate_db_error, wrap_db_errors
from app.errors import AppError, ConflictError, NotFoundError, UnavailableError


def test_translation_table() -> None:
    orig = Exception("boom")
    assert isinstance(translate_db_error(sa_exc.OperationalError("s", {}, orig)), UnavailableError)
    assert isinstance(translate_db_error(sa_exc.InterfaceError("s", {}, orig)), UnavailableError)
    assert isinstance(translate_db_error(ConnectionRefusedError()), UnavailableError)
    assert isinstance(translate_db_error(sa_exc.IntegrityError("s", {}, orig)), ConflictError)
    generic = translate_db_error(sa_exc.ProgrammingError("s", {}, orig))
    assert type(generic) is AppError and "boom" in generic.context["detail"]
    assert translate_db_error(NotFoundError()) is None
    assert translate_db_error(ValueError()) is None


def test_wrap_keeps_the_cause_and_passes_other_errors() -> None:
    with pytest.raises(UnavailableError) as caught:
        with wrap_db_errors():
            raise sa_exc.OperationalError("SELECT 1", {}, Exception("database is locked"))
    assert isinstance(caught.value.__cause__, sa_exc.OperationalError)
    with pytest.raises(KeyError):
        with wrap_db_errors():
            raise KeyError("not ours")


async def test_unreachable_postgres_is_unavailable() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(UnavailableError):
            with wrap_db_errors():
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()


async def test_begin_immediate_serializes_sqlite_writers(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE counter (n INTEGER)"))
            await conn.execute(sa.text("INSERT INTO counter VALUES (0)"))

        async def bump() -> None:
            async with begin_immediate(engine) as conn:
                n = (await conn.execute(sa.text("SELECT n FROM counter"))).scalar_one()
                await asyncio.sleep(0.01)  # another writer would interleave here
                await conn.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})

        await asyncio.gather(*(bump() for _ in range(5)))
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT n FROM counter"))).scalar_one() == 5
    finally:
        await engine.dispose()


async def test_begin_immediate_is_a_plain_transaction_on_postgres(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        async with begin_immediate(engine) as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_a_database_refusing_connections_is_unavailable(
    pg_url: str, pg_admin_url: str
) -> None:
    """A server "not currently accepting connections" must be a 503, not a 500."""
    name = pg_url.rsplit("/", 1)[1]
    admin = create_engine(pg_admin_url)
    engine = create_engine(pg_url)
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            await conn.commit()
        with pytest.raises(UnavailableError):
            with wrap_db_errors():
                async with engine.connect() as c:
                    await c.execute(sa.text("SELECT 1"))
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            await conn.commit()
        await engine.dispose()
        await admin.dispose()
