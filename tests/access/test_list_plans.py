"""A tenant's lists are filtered in SQL, on the tenant indexes (PostgreSQL plans)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.queue import RunQueue
from app.services.interrupts import InterruptService
from app.services.threads import ThreadService
from tests.api.conftest import make_registry


async def plan_of(engine: AsyncEngine, call: Callable[[], Awaitable[Any]]) -> str:
    """The plan PostgreSQL picks (sequential scans off: the tables are empty) for the first
    SELECT that ``call`` runs."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, params))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await call()
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)
    statement, params = statements[0]
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        rows = (await conn.exec_driver_sql(f"EXPLAIN {statement}", params)).all()
    return "\n".join(r[0] for r in rows)


async def test_a_tenants_lists_use_the_tenant_indexes(pg_engine: AsyncEngine) -> None:
    queue = RunQueue(pg_engine)
    threads = ThreadService(pg_engine, make_registry(), queue).scoped("acme")
    interrupts = InterruptService(pg_engine, queue).scoped("acme")
    plan = await plan_of(pg_engine, lambda: threads.list(status="interrupted"))
    assert "ix_threads_tenant_status_created" in plan, plan
    plan = await plan_of(pg_engine, lambda: interrupts.list(status="pending"))
    assert "ix_interrupts_tenant_status_created" in plan, plan
    plan = await plan_of(pg_engine, lambda: interrupts.list(status="answered", graph="approval"))
    assert "tenant" in plan, plan  # filtered by the database, whichever index serves it
