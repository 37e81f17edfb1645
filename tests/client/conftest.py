"""One ``hitl serve`` process per test module and backend (SQLite file, fresh PostgreSQL database).

Tests share the server, so each one works on its own threads (unique ids, a ``run`` metadata label)
and never assumes an empty database.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import make_url

from app.client import HitlClient
from tests.client.server import Server, serve


def _admin(url: str, statement: str) -> None:
    import asyncpg

    async def run() -> None:
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="module")
def postgres_database(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A migrated PostgreSQL database for one module's server (dropped afterwards)."""
    name = f"hitl_test_client_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A running ``hitl serve`` with its embedded worker, on SQLite and on PostgreSQL."""
    workdir = tmp_path_factory.mktemp(f"serve-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'hitl.db'}"  # created and migrated by serve
    else:
        url = request.getfixturevalue("postgres_database")
    with serve(url, workdir) as running:
        yield running


@pytest.fixture
def hitl(server: Server) -> Iterator[HitlClient]:
    with HitlClient(server.url, timeout=30) as client:
        yield client


@pytest.fixture
def run_id() -> str:
    """A label unique to this test, for its thread ids and metadata."""
    return uuid.uuid4().hex[:10]
