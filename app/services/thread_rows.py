"""Reading threads: the Thread record with its pending questions, and the filters of lists.

Shared by the thread and interrupt use cases and by ``?wait=true``. Tenancy is a filter here:
`tenant_filter` limits a query to one tenant's rows (nothing for None, every tenant), and
`load_thread` finds another tenant's thread as much as a missing one: not at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.driver import fetch
from app.db.tables import JSON, InterruptRow, ThreadRow, UtcDateTime
from app.errors import InvalidInputError, ThreadNotFoundError
from app.services.views import InterruptStatus, PendingInterrupt, Thread

__all__ = [
    "THREAD_COLUMNS",
    "load_thread",
    "load_threads",
    "metadata_filter",
    "tenant_filter",
    "tenant_scope",
]

METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

#: What a Thread record is read from (the ORM attribute names, used through Core).
THREAD_COLUMNS = (
    ThreadRow.thread_id,
    ThreadRow.graph,
    ThreadRow.status,
    ThreadRow.values,
    ThreadRow.next,
    ThreadRow.metadata_.label("metadata_"),
    ThreadRow.error,
    ThreadRow.created_at,
    ThreadRow.updated_at,
)

# Pending interrupts of some threads, oldest first (the order they were asked in).
SELECT_PENDING = (
    sa.select(
        InterruptRow.id,
        InterruptRow.thread_id,
        InterruptRow.value,
        InterruptRow.node,
        InterruptRow.created_at,
        InterruptRow.schema,
        InterruptRow.expires_at,
    )
    .where(
        InterruptRow.thread_id.in_(sa.bindparam("thread_ids", expanding=True)),
        InterruptRow.status == InterruptStatus.PENDING.value,
    )
    .order_by(InterruptRow.created_at, InterruptRow.id)
)

#: The same on PostgreSQL: one statement text for any number of threads (prepared once), and
#: a lookup by thread id per thread. With an IN list the planner scanned the whole table once
#: it was small enough (2 ms at 5,000 questions against 0.2 ms), statistics or not.
PG_SELECT_PENDING = (
    sa.text(
        """
    SELECT i.id, i.thread_id, i.value, i.node, i.created_at, i.schema, i.expires_at
    FROM unnest(CAST(:thread_ids AS text[])) AS t(thread_id)
    CROSS JOIN LATERAL (
        SELECT id, thread_id, value, node, created_at, schema, expires_at, status
        FROM interrupts WHERE interrupts.thread_id = t.thread_id OFFSET 0
    ) AS i
    WHERE i.status = 'pending'
    ORDER BY i.created_at, i.id
    """
    )
    .bindparams(sa.bindparam("thread_ids", type_=ARRAY(sa.Text)))
    .columns(value=JSON, schema=JSON, created_at=UtcDateTime(), expires_at=UtcDateTime())
)


async def load_threads(conn: AsyncConnection, rows: Sequence[Any]) -> list[Thread]:
    """Thread records for thread rows, with their pending interrupts (one extra query)."""
    if not rows:
        return []
    pending: dict[str, list[PendingInterrupt]] = {}
    thread_ids = [r.thread_id for r in rows]
    if conn.dialect.name == "postgresql":
        result: Any = await fetch(conn, PG_SELECT_PENDING, {"thread_ids": thread_ids})
    else:
        result = await conn.execute(SELECT_PENDING, {"thread_ids": thread_ids})
    for i in result:
        pending.setdefault(i.thread_id, []).append(
            PendingInterrupt(
                id=i.id,
                value=i.value,
                node=i.node,
                created_at=i.created_at,
                schema=i.schema,
                expires_at=i.expires_at,
            )
        )
    return [thread_from_row(r, pending.get(r.thread_id, [])) for r in rows]


def thread_from_row(row: Any, interrupts: list[PendingInterrupt]) -> Thread:
    """The record of a row of `THREAD_COLUMNS` (a SELECT's or an INSERT/UPDATE's RETURNING)."""
    return Thread(
        thread_id=row.thread_id,
        graph=row.graph,
        status=row.status,
        values=row.values,
        next=list(row.next or []),
        interrupts=interrupts,
        metadata=dict(row.metadata_ or {}),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def tenant_filter(column: Any, tenant: str | None) -> list[sa.ColumnElement[bool]]:
    """The condition that limits a query to ``tenant``'s rows (none for every tenant)."""
    return [] if tenant is None else [column == tenant]


def tenant_scope(scope: str, tenant: str | None) -> str:
    """An Idempotency-Key scope of one tenant: tenants never replay each other's responses."""
    return scope if tenant is None else f"tenant {tenant}: {scope}"


async def load_thread(
    conn: AsyncConnection, thread_id: str, *, tenant: str | None = None
) -> Thread:
    """The thread, with its pending interrupts; not found when it belongs to another tenant."""
    query = sa.select(*THREAD_COLUMNS).where(
        ThreadRow.thread_id == thread_id, *tenant_filter(ThreadRow.tenant, tenant)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise ThreadNotFoundError(f"Thread {thread_id!r} does not exist.", thread_id=thread_id)
    (thread,) = await load_threads(conn, [row])
    return thread


def metadata_filter(conn_dialect: str, key: str, value: str) -> sa.ColumnElement[bool]:
    """``metadata.<key>=value``: the string, or the JSON scalar it spells (``1``, ``true``)."""
    if not METADATA_KEY.match(key):
        raise InvalidInputError(
            "Metadata filter keys may use letters, digits, '_' and '-' (at most 64).", key=key
        )
    candidates: list[Any] = [value]
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        parsed = value
    if parsed is None or isinstance(parsed, bool | int | float):
        candidates.append(parsed)
    if conn_dialect == "postgresql":
        column = sa.type_coerce(ThreadRow.metadata_, JSONB)  # @> containment, GIN-indexed
        return sa.or_(*(column.contains({key: c}) for c in candidates))
    extracted = sa.func.json_extract(ThreadRow.metadata_, f'$."{key}"')
    kind = sa.func.json_type(ThreadRow.metadata_, f'$."{key}"')
    clauses = [sa.and_(kind == "text", extracted == value)]
    for c in candidates[1:]:
        if c is None:
            clauses.append(kind == "null")
        elif isinstance(c, bool):
            clauses.append(kind == ("true" if c else "false"))
        else:
            clauses.append(sa.and_(kind.in_(["integer", "real"]), extracted == c))
    return sa.or_(*clauses)
