"""Two tenants and an operator on the real ASGI app (SQLite and PostgreSQL), with helpers to
prove that a refused call changed nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.app import create_app
from app.db.tables import Base
from tests.api.conftest import make_registry, make_settings

ACME_KEY = "key-acme-0000000001"
GLOBEX_KEY = "key-globex-000000001"
OPERATOR_KEY = "key-operator-0000001"
KEYS = f"acme-bot:acme={ACME_KEY}, globex-bot:globex={GLOBEX_KEY}, ops={OPERATOR_KEY}"

ACME = {"Authorization": f"Bearer {ACME_KEY}"}
GLOBEX = {"Authorization": f"Bearer {GLOBEX_KEY}"}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


@pytest.fixture
async def keyed_app(db_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(
        make_settings(db_url, api_keys=KEYS), embedded_worker=True, registry=make_registry()
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(keyed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=keyed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as c:
        yield c


def engine_of(app: FastAPI) -> AsyncEngine:
    engine: AsyncEngine = app.state.services.engine
    return engine


async def snapshot(engine: AsyncEngine) -> dict[str, list[str]]:
    """Every row of every table, as text: equal snapshots mean nothing was written."""
    out: dict[str, list[str]] = {}
    async with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(sa.select(table))).all()
            out[table.name] = sorted(repr(tuple(row)) for row in rows)
    return out


async def start(
    client: httpx.AsyncClient, headers: dict[str, str], graph: str = "approval", **body: Any
) -> dict[str, Any]:
    """POST /threads?wait=true as ``headers``; the settled (interrupted) thread."""
    response = await client.post(
        "/threads", params={"wait": "true"}, json={"graph": graph, **body}, headers=headers
    )
    assert response.status_code in (200, 201), response.text
    thread: dict[str, Any] = response.json()
    assert thread["status"] == "interrupted", thread
    return thread
