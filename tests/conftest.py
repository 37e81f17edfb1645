"""Shared database fixtures: real SQLite files and real PostgreSQL databases, never mocks.

Migrations run once per session into a template (a PostgreSQL ``TEMPLATE`` database, a SQLite
file); each test gets its own clone, so tests may commit, run concurrently with other helpers'
sessions, and never see each other's rows.

    pg_admin_url  (session)  TEST_DATABASE_URL; unreachable -> fail if HITL_REQUIRE_POSTGRES=1 else skip
    pg_template   (session)  name of a uniquely named, migrated template database (dropped at the end)
    pg_url        (function) plain postgresql:// URL of a fresh clone of the template (dropped after)
    sqlite_url    (function) plain sqlite:/// URL of a migrated file under tmp_path
    db_url        (function) one of the two above, ids "sqlite" and "postgres"
    db_engine     (function) app.db.engine.create_engine(db_url), disposed after the test

Tests that use a PostgreSQL fixture are marked ``postgres`` automatically.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_FIXTURES = frozenset({"pg_admin_url", "pg_template", "pg_url"})

_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine on a fresh loop in a helper thread.

    Never touches this thread's event loop, so it is safe from sync fixtures while
    pytest-asyncio owns the test's loop.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="conftest-db") as pool:
        return pool.submit(asyncio.run, coro).result()


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _asyncpg_dsn(url: str) -> str:
    """asyncpg accepts only the postgresql:// / postgres:// schemes."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & PG_FIXTURES:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The PostgreSQL server's admin URL; a clear failure or skip when it is unreachable."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)
    try:
        _run(_admin(url, "SELECT 1"))
    except Exception as exc:
        reason = f"PostgreSQL unreachable at {url}: {type(exc).__name__}: {exc}"
        if os.environ.get("HITL_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (HITL_REQUIRE_POSTGRES=1)", pytrace=False)
        print(reason)  # the skip reason, visible with -s
        pytest.skip(reason)  # no postgres here and not required (CI sets HITL_REQUIRE_POSTGRES=1)
    return url


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A migrated template database (its name); cloned per test, dropped at session end."""
    from app.db.migrate import upgrade

    name = _unique("hitl_test_tpl")
    _run(_admin(pg_admin_url, f'CREATE DATABASE "{name}"'))
    try:
        upgrade(_with_database(pg_admin_url, name))
        yield name
    finally:
        _run(_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test (plain postgresql:// URL)."""
    name = _unique("hitl_test")
    _run(_admin(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        _run(_admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied per test (migrating once is much cheaper)."""
    from app.db.migrate import upgrade

    path = tmp_path_factory.mktemp("sqlite_template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite file under tmp_path (plain sqlite:/// URL)."""
    path = tmp_path / "hitl.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated database URL: SQLite and PostgreSQL in turn."""
    url: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return url


@pytest.fixture
async def db_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """An AsyncEngine on db_url, disposed after the test."""
    from app.db.engine import create_engine

    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """An AsyncEngine on a fresh PostgreSQL database, disposed after the test."""
    from app.db.engine import create_engine

    engine = create_engine(pg_url)
    try:
        yield engine
    finally:
        await engine.dispose()
