"""Reading the event log in order, so that a reader's cursor never skips an event.

On PostgreSQL an event is *final* once no transaction older than its own is still in flight in
this database: anything committed later has a larger transaction id and sorts after it. `read_events` returns
final events only and says which in-flight transaction holds the rest back (``held_by``); the
caller reads again shortly. A transaction that stays open for long (an idle session that wrote
something) would hold every reader back, so a caller may pass such
transactions in ``ignore_tx`` after a while: their own events, if they ever write any, may then
be seen late by cursors already past them. SQLite has one writer: every committed event is final.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.errors import wrap_db_errors
from app.db.tables import EventRow, InterruptRow
from app.services.events import (
    EventCursor,
    StoredEvent,
    expand_payload,
    needs_question,
    stored_event_id,
)

__all__ = ["EventBatch", "latest_cursor", "read_events", "stored_events"]

E = EventRow


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Final events after a cursor, in order; ``held_by``: the transaction the rest wait for."""

    events: list[StoredEvent]
    held_by: int | None = None


def _bigint(expr: Any) -> Any:
    """An xid8 as a bigint (there is no direct cast)."""
    return sa.cast(sa.cast(expr, sa.Text), sa.BigInteger)


_SNAPSHOT = sa.func.pg_current_snapshot()
_IN_FLIGHT = sa.func.pg_snapshot_xip(_SNAPSHOT).column_valued("xid")

#: Transactions running in other databases of the cluster (never ours: no need to wait for
#: them). ``backend_xid`` is a 32-bit xid; snapshots hold 64-bit ones.
_ELSEWHERE = sa.text(
    """
    SELECT CAST(CAST(backend_xid AS text) AS bigint) AS xid FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
    """
).columns(sa.column("xid", sa.BigInteger))

#: The oldest transaction in flight in this database, not counting the ignored ones; the
#: snapshot's upper bound when there is none. Events of older transactions are final.
_PG_HORIZON = sa.func.coalesce(
    sa.select(sa.func.min(_bigint(_IN_FLIGHT)))
    .where(
        _bigint(_IN_FLIGHT) != sa.all_(sa.bindparam("ignore_tx", type_=ARRAY(sa.BigInteger))),
        (_bigint(_IN_FLIGHT) % 4294967296).not_in(sa.select(_ELSEWHERE.subquery().c.xid)),
    )
    .scalar_subquery(),
    _bigint(sa.func.pg_snapshot_xmax(_SNAPSHOT)),
)

_COLUMNS = (E.id, E.tx, E.event_id, E.type, E.thread_id, E.tenant, E.graph, E.payload, E.created_at)


_QUESTIONS = sa.select(
    InterruptRow.id,
    InterruptRow.node,
    InterruptRow.value,
    InterruptRow.schema,
    InterruptRow.expires_at,
).where(InterruptRow.id.in_(sa.bindparam("ids", expanding=True)))


def stored_event(row: Any, questions: Mapping[str, Any] | None = None) -> StoredEvent:
    """A StoredEvent from a row with the events columns; ``questions``: the interrupts rows
    its stored payload needs (see `stored_events`), by id."""
    asked = needs_question(row.type, row.payload)
    question = (questions or {}).get(asked) if asked is not None else None
    return StoredEvent(
        id=int(row.id),
        tx=int(row.tx),
        event_id=stored_event_id(row.type, row.event_id, row.payload),
        type=row.type,
        thread_id=row.thread_id,
        tenant=row.tenant,
        graph=row.graph,
        payload=expand_payload(row.type, row.thread_id, row.graph, row.payload, question),
        created_at=row.created_at,
    )


async def questions_of(conn: AsyncConnection, rows: Iterable[Any]) -> dict[str, Any]:
    """The interrupts rows that the events ``rows`` take their question from, by id (one
    statement; none when no row needs one)."""
    ids = sorted({i for r in rows if (i := needs_question(r.type, r.payload)) is not None})
    if not ids:
        return {}
    with wrap_db_errors():
        found = (await conn.execute(_QUESTIONS, {"ids": ids})).mappings().all()
    return {q["id"]: q for q in found}


async def stored_events(conn: AsyncConnection, rows: Sequence[Any]) -> list[StoredEvent]:
    """StoredEvents from rows with the events columns, their payloads expanded."""
    questions = await questions_of(conn, rows)
    return [stored_event(row, questions) for row in rows]


async def read_events(
    conn: AsyncConnection,
    after: EventCursor,
    *,
    thread_id: str | None = None,
    tenant: str | None = None,
    limit: int = 500,
    ignore_tx: Collection[int] = (),
) -> EventBatch:
    """Final events after ``after`` in cursor order: one thread's or all (one tenant's, if set)."""
    pg = conn.dialect.name == "postgresql"
    position = sa.tuple_(E.tx, E.id) > sa.tuple_(sa.literal(after.tx), sa.literal(after.id))
    conditions: list[sa.ColumnElement[bool]] = [position]
    if thread_id is not None:
        conditions.append(E.thread_id == thread_id)
    if tenant is not None:
        conditions.append(E.tenant == tenant)
    columns: list[Any] = list(_COLUMNS)
    if pg:
        columns.append(_PG_HORIZON.label("horizon"))
    query = sa.select(*columns).where(*conditions).order_by(E.tx, E.id).limit(limit)
    params = {"ignore_tx": sorted(ignore_tx)} if pg else {}
    with wrap_db_errors():
        rows = (await conn.execute(query, params)).all()
    held_by: int | None = None
    for n, row in enumerate(rows):
        if pg and row.tx >= row.horizon:
            rows, held_by = rows[:n], int(row.horizon)
            break
    return EventBatch(await stored_events(conn, rows), held_by=held_by)


async def latest_cursor(conn: AsyncConnection, *, ignore_tx: Collection[int] = ()) -> EventCursor:
    """Where a live-only reader starts: before every event that is not final yet.

    On PostgreSQL that is the oldest transaction in flight (events already committed by
    younger ones are read again, never missed); on SQLite, the newest event.
    """
    with wrap_db_errors():
        if conn.dialect.name == "postgresql":
            params = {"ignore_tx": sorted(ignore_tx)}
            horizon = (await conn.execute(sa.select(_PG_HORIZON), params)).scalar_one()
            return EventCursor(int(horizon), 0)
        newest = (await conn.execute(sa.select(sa.func.max(E.id)))).scalar()
    return EventCursor(0, int(newest or 0))
