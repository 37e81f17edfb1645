"""Alembic is the schema authority: `upgrade head` must yield exactly the models, and round-trip."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from app.db.engine import create_engine
from app.db.migrate import alembic_config, aupgrade, downgrade, include_object_for, upgrade
from app.db.tables import Base


def _diffs(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={"compare_type": True, "include_object": include_object_for(conn.dialect.name)},
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def _run(url: str, fn: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def test_upgrade_head_matches_models(db_url: str) -> None:
    assert await _run(db_url, _diffs) == []
    assert await _run(db_url, _revision) == _head()


async def test_downgrade_base_then_upgrade_head_round_trips(db_url: str) -> None:
    expected = {table.name for table in Base.metadata.sorted_tables}
    assert expected <= await _run(db_url, _tables)

    downgrade(db_url, "base")
    assert await _run(db_url, _tables) <= {"alembic_version"}
    assert await _run(db_url, _revision) is None

    await aupgrade(db_url)  # the async entry point, from inside a running loop
    assert await _run(db_url, _diffs) == []
    assert expected <= await _run(db_url, _tables)


async def test_upgrade_is_idempotent(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    assert await _run(sqlite_url, _revision) == _head()


async def test_fresh_sqlite_file_is_created_and_migrated(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    await aupgrade(url)
    assert await _run(url, _diffs) == []


@pytest.mark.parametrize("pragma, expected", [("journal_mode", "wal"), ("foreign_keys", 1)])
async def test_sqlite_pragmas_are_set(sqlite_url: str, pragma: str, expected: Any) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as conn:
            value = (await conn.exec_driver_sql(f"PRAGMA {pragma}")).scalar_one()
    finally:
        await engine.dispose()
    assert value == expected


def test_unreachable_database_is_unavailable() -> None:
    from app.errors import UnavailableError

    with pytest.raises(UnavailableError):
        upgrade("postgresql://postgres@127.0.0.1:1/nowhere")
