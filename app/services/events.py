"""The event log: what happened to threads and interrupts, written in the caller's transaction.

`record_events` is the durable outbox: an event and its webhook deliveries are rows written in
the same transaction as the change they report, so a committed change always has its event and a
rolled-back one never does. Webhooks (`app.worker.webhooks`) and SSE streams
(`app.api.routes.streams`) read it through `app.services.event_feed`.

Order and cursors. On PostgreSQL, ids from a sequence are not in commit order: a transaction may
take id 10, another id 11 and commit first, and a reader that moved past 11 would never see 10.
So every event stores the id of its writing transaction (``tx``), readers order by ``(tx, id)``
and return only events of transactions older than every transaction still in flight (the
snapshot's ``xmin``): anything committed later sorts after them. The cursor handed to SSE clients
is ``"<tx>-<id>"``. SQLite has one writer at a time, so ``tx`` is 0 and the cursor is the id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from hashlib import blake2b
from typing import Any
from urllib.parse import quote

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.driver import fetch
from app.db.errors import wrap_db_errors
from app.db.tables import JSON, EventRow
from app.errors import InvalidInputError

__all__ = [
    "EVENTS_CHANNEL",
    "PG_EVENTS_AFTER_INSERT",
    "EventCursor",
    "EventLog",
    "EventType",
    "Fields",
    "NewEvent",
    "StoredEvent",
    "expand_payload",
    "interrupt_created",
    "interrupt_expired",
    "interrupt_resolved",
    "links",
    "needs_question",
    "notify_has_deliveries",
    "pg_event_rows",
    "question_event_id",
    "record_events",
    "stored_event_id",
    "thread_cancelled",
    "thread_completed",
    "thread_failed",
]

#: The LISTEN/NOTIFY channel that tells SSE broadcasters and webhook dispatchers to look.
EVENTS_CHANNEL = "hitl_events"


def notify_has_deliveries(payload: str | None) -> bool:
    """Whether a ``hitl_events`` notification (None: listener reconnected) may mean work for
    webhook dispatchers."""
    if payload is None:
        return True
    _, _, deliveries = payload.partition(" ")
    return deliveries != "0"


#: A row's columns by name (a dict, or SQLAlchemy's ``row._mapping``).
Fields = Mapping[Any, Any]


class EventType(StrEnum):
    INTERRUPT_CREATED = "interrupt.created"
    INTERRUPT_RESOLVED = "interrupt.resolved"
    INTERRUPT_EXPIRED = "interrupt.expired"
    THREAD_COMPLETED = "thread.completed"
    THREAD_FAILED = "thread.failed"
    THREAD_CANCELLED = "thread.cancelled"


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be recorded. ``event_id`` is what receivers deduplicate on.

    ``stored``: what is written instead of ``payload`` (the builders' compact form, a JSON
    array, which `expand_payload` turns back into ``payload``); None stores ``payload``.
    """

    type: str
    thread_id: str
    graph: str
    tenant: str | None
    payload: Mapping[str, Any]
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    stored: Sequence[Any] | None = None


@dataclass(frozen=True, slots=True, order=True)
class EventCursor:
    """A position in the event log: after ``(tx, id)``. ``EventCursor()`` is the beginning."""

    tx: int = 0
    id: int = 0

    def __str__(self) -> str:
        return str(self.id) if self.tx == 0 else f"{self.tx}-{self.id}"

    @classmethod
    def parse(cls, text: str | None) -> EventCursor:
        """Read a cursor sent back by a client (``Last-Event-ID`` / ``?after=``)."""
        if text is None or not text.strip():
            return cls()
        tx, sep, id_ = text.strip().partition("-")
        try:
            cursor = cls(int(tx), int(id_)) if sep else cls(0, int(tx))
        except ValueError:
            raise InvalidInputError(f"Not an event id: {text!r}.", event_id=text) from None
        if cursor.tx < 0 or cursor.id < 0:
            raise InvalidInputError(f"Not an event id: {text!r}.", event_id=text)
        return cursor


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A recorded event, as streams and webhooks send it."""

    id: int
    tx: int
    event_id: str
    type: str
    thread_id: str
    tenant: str | None
    graph: str
    payload: Any
    created_at: datetime

    @property
    def cursor(self) -> EventCursor:
        return EventCursor(self.tx, self.id)

    def envelope(self) -> dict[str, Any]:
        """The JSON every consumer gets (webhook body, SSE data): same bytes on every retry."""
        return {
            "id": self.event_id,
            "type": self.type,
            "created_at": self.created_at.isoformat(),
            "data": self.payload,
        }

    def body(self) -> bytes:
        return orjson.dumps(self.envelope())


# --- builders ---------------------------------------------------------------------------


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def links(public_url: str, thread_id: str, interrupt_id: str | None = None) -> dict[str, str]:
    """Where to look (GET) and, for a question, where to answer it (POST ``resume``)."""
    base = public_url.rstrip("/")
    out = {"thread": f"{base}/threads/{quote(thread_id, safe='')}"}
    if interrupt_id is not None:
        interrupt = f"{base}/interrupts/{quote(interrupt_id, safe='')}"
        out["interrupt"] = interrupt
        out["resume"] = f"{interrupt}/resume"
    return out


#: A compact stored payload is a JSON array (a built payload is always an object):
#: ``[public URL, interrupt id or null, {the other fields}]``, the last left out when empty.
#: The fields of an interrupt event that come from its question, in payload order.
_QUESTION_FIELDS = ("node", "value", "schema", "expires_at")
#: Questions read back from the interrupts row (immutable there) instead of being stored again.
_FROM_INTERRUPT_ROW = frozenset({EventType.INTERRUPT_CREATED.value})


def _interrupt_payload(row: Fields, public_url: str) -> dict[str, Any]:
    return {
        "thread_id": row["thread_id"],
        "graph": row["graph"],
        "interrupt_id": row["id"],
        "node": row.get("node"),
        "value": row.get("value"),
        "schema": row.get("schema"),
        "expires_at": _iso(row.get("expires_at")),
        "links": links(public_url, row["thread_id"], row["id"]),
    }


def _compact(type_: EventType, payload: Mapping[str, Any], public_url: str) -> list[Any]:
    """What is stored of a built payload: no thread id and graph (the event's columns), no
    links (derived from ``public_url`` and the ids), and for a new question none of its fields
    (the interrupts row has them). `expand_payload` restores the payload exactly."""
    drop = {"thread_id", "graph", "links", "interrupt_id"}
    if type_.value in _FROM_INTERRUPT_ROW:
        drop.update(_QUESTION_FIELDS)
    rest = {k: v for k, v in payload.items() if k not in drop}
    out = [public_url, payload.get("interrupt_id")]
    return [*out, rest] if rest else out


def _question_of(stored: Any) -> str | None:
    """The interrupt id of a compact stored payload (None: not compact, or not a question's)."""
    if type(stored) is list and len(stored) >= 2 and isinstance(stored[1], str):
        return stored[1]
    return None


def question_event_id(type_: str, interrupt_id: str) -> str:
    """The id of an event about a question: a hash of its type and the question's id (each
    happens once per question), 32 hex digits like the random ids of other events. PostgreSQL
    stores it as '' (SQLite stores it: its unique constraint on event_id)."""
    return blake2b(f"{type_}|{interrupt_id}".encode(), digest_size=16).hexdigest()


def _event(type_: EventType, row: Fields, payload: dict[str, Any], public_url: str) -> NewEvent:
    stored = _compact(type_, payload, public_url)
    interrupt_id = _question_of(stored)
    event_id = (
        uuid.uuid4().hex if interrupt_id is None else question_event_id(type_.value, interrupt_id)
    )
    return NewEvent(
        type_.value, row["thread_id"], row["graph"], row.get("tenant"), payload, event_id, stored
    )


def stored_event_id(type_: str, event_id: str, stored: Any) -> str:
    """The event id of a stored event ('': derived from its question, see `question_event_id`)."""
    interrupt_id = None if event_id else _question_of(stored)
    return event_id if interrupt_id is None else question_event_id(type_, interrupt_id)


def needs_question(type_: str, stored: Any) -> str | None:
    """The interrupt id whose row `expand_payload` needs for a stored payload, if any."""
    return _question_of(stored) if type_ in _FROM_INTERRUPT_ROW else None


def expand_payload(
    type_: str, thread_id: str, graph: str, stored: Any, question: Fields | None = None
) -> Any:
    """The payload an event was built with, from its stored form (full payloads, written
    before the compact form or by other writers, are returned as they are).

    ``question``: the interrupts row (node, value, schema, expires_at) of a new question's
    event; None if it is gone (its thread was deleted): those fields are then null.
    """
    if type(stored) is not list:
        return stored
    base, interrupt_id = stored[0], stored[1]
    rest = dict(stored[2]) if len(stored) > 2 else {}
    out: dict[str, Any] = {"thread_id": thread_id, "graph": graph}
    if type_.startswith("interrupt."):
        out["interrupt_id"] = interrupt_id
        for name in _QUESTION_FIELDS:
            if type_ in _FROM_INTERRUPT_ROW:
                value = question.get(name) if question is not None else None
                out[name] = _iso(value)
            else:
                out[name] = rest.pop(name, None)
        out["links"] = links(base, thread_id, interrupt_id)
    else:
        out["status"] = rest.pop("status", None)
        out["links"] = links(base, thread_id)
    out.update(rest)
    return out


def interrupt_created(row: Fields, *, public_url: str) -> NewEvent:
    """A new question; ``row`` has the interrupt columns (id, thread_id, tenant, graph, node,
    value, schema, expires_at)."""
    payload = _interrupt_payload(row, public_url)
    return _event(EventType.INTERRUPT_CREATED, row, payload, public_url)


def interrupt_resolved(
    row: Fields, *, answer: Any, answered_by: str | None, public_url: str
) -> NewEvent:
    """A human answered ``row`` (the run that delivers the answer is queued)."""
    payload = _interrupt_payload(row, public_url)
    payload.update(answer=answer, answered_by=answered_by)
    return _event(EventType.INTERRUPT_RESOLVED, row, payload, public_url)


def interrupt_expired(row: Fields, *, public_url: str) -> NewEvent:
    """``row``'s deadline passed: resumed with its default, or (no default) its thread failed."""
    payload = _interrupt_payload(row, public_url)
    has_default = bool(row.get("has_default"))
    payload.update(
        has_default=has_default,
        default=row.get("default") if has_default else None,
        outcome="resumed_with_default" if has_default else "thread_failed",
    )
    return _event(EventType.INTERRUPT_EXPIRED, row, payload, public_url)


def _thread_payload(row: Fields, status: str, public_url: str) -> dict[str, Any]:
    return {
        "thread_id": row["thread_id"],
        "graph": row["graph"],
        "status": status,
        "links": links(public_url, row["thread_id"]),
    }


def thread_completed(row: Fields, *, values: Any, public_url: str) -> NewEvent:
    """The graph ran to its end; ``row`` has thread_id, graph, tenant."""
    payload = _thread_payload(row, "completed", public_url)
    payload["values"] = values
    return _event(EventType.THREAD_COMPLETED, row, payload, public_url)


def thread_failed(
    row: Fields,
    *,
    error: Any,
    public_url: str,
    cancelled_interrupt_ids: Sequence[str] = (),
) -> NewEvent:
    """A node raised, a value could not be stored, or a question expired without a default
    (``cancelled_interrupt_ids``: the thread's other questions, withdrawn with it)."""
    payload = _thread_payload(row, "failed", public_url)
    payload["error"] = error
    if cancelled_interrupt_ids:
        payload["cancelled_interrupt_ids"] = list(cancelled_interrupt_ids)
    return _event(EventType.THREAD_FAILED, row, payload, public_url)


def thread_cancelled(
    row: Fields, *, interrupt_ids: Sequence[str] = (), public_url: str
) -> NewEvent:
    """Someone cancelled the thread; ``interrupt_ids`` are the questions withdrawn with it."""
    payload = _thread_payload(row, "cancelled", public_url)
    payload["interrupt_ids"] = list(interrupt_ids)
    return _event(EventType.THREAD_CANCELLED, row, payload, public_url)


# --- writing ----------------------------------------------------------------------------

#: The CTEs of `PG_RECORD` after its rows are chosen: for a statement that defines
#: ``new_events`` (id, thread_id of the events it inserted) and takes ``:global_url``.
#: ``notified`` sends the notification (0 rows when it is not sent): only when an event was
#: recorded and it created webhook deliveries (for the dispatchers) or some process listens for
#: every event (a live ``event_listeners`` row: a settle watch, an event stream; see
#: `app.services.event_interest`). Otherwise nobody would hear it, and PostgreSQL would still
#: serialise the commit on its notification lock and wake every listening connection.
PG_EVENTS_AFTER_INSERT = """
    targets AS (
        SELECT id, CAST(:global_url AS text) AS url FROM new_events
        WHERE CAST(:global_url AS text) IS NOT NULL
        UNION
        SELECT id, url FROM (
            -- A lookup per event (a subplan on the key): as a join it was planned as a
            -- sequential scan of threads whenever statistics were missing or stale.
            SELECT new_events.id, (
                SELECT webhook FROM threads WHERE threads.thread_id = new_events.thread_id
            ) AS url
            FROM new_events
        ) AS thread_targets
        WHERE url IS NOT NULL
    ), deliveries AS (
        INSERT INTO webhook_deliveries (event_id, url) SELECT id, url FROM targets RETURNING 1
    ), notified AS (
        SELECT pg_notify(
            'hitl_events',
            CAST(max(id) AS text) || ' ' || CAST((SELECT count(*) FROM deliveries) AS text)
        ) FROM new_events
        HAVING count(*) > 0 AND (
            (SELECT count(*) FROM deliveries) > 0
            OR EXISTS (SELECT FROM event_listeners WHERE expires_at > now())
        )
    )
"""

#: PostgreSQL, one round trip: the events (stamped with this transaction's id, in the given
#: order), one delivery per target URL (the global one, the thread's own), and a NOTIFY that
#: PostgreSQL sends at commit, with payload "<newest event id> <deliveries created>" (webhook
#: dispatchers wake only for the latter).
PG_RECORD = sa.text(
    f"""
    WITH new_events AS (
        INSERT INTO events (event_id, type, thread_id, tenant, graph, payload, tx)
        SELECT e->>'event_id', e->>'type', e->>'thread_id', e->>'tenant', e->>'graph',
            e->'payload', CAST(CAST(pg_current_xact_id() AS text) AS bigint)
        FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS r(e, n)
        ORDER BY n
        RETURNING id, thread_id
    ), {PG_EVENTS_AFTER_INSERT}
    SELECT count(*) FROM notified
    """
).bindparams(sa.bindparam("events", type_=JSON))

#: SQLite: the events (one writer at a time: id order is commit order, tx stays 0).
SQLITE_INSERT_EVENTS = sa.insert(EventRow).returning(EventRow.id, sort_by_parameter_order=True)

#: SQLite: one delivery per recorded event and target URL.
SQLITE_INSERT_DELIVERIES = sa.text(
    """
    INSERT INTO webhook_deliveries (event_id, url)
    SELECT id, :global_url FROM events WHERE id IN :ids AND :global_url IS NOT NULL
    UNION
    SELECT events.id, threads.webhook FROM events
    JOIN threads ON threads.thread_id = events.thread_id
    WHERE events.id IN :ids AND threads.webhook IS NOT NULL
    """
).bindparams(sa.bindparam("ids", expanding=True))


def _as_json(event: NewEvent, pg: bool) -> dict[str, Any]:
    event_id = event.event_id
    interrupt_id = _question_of(event.stored)
    if pg and interrupt_id is not None and event_id == question_event_id(event.type, interrupt_id):
        event_id = ""  # derived when read (`stored_event_id`)
    return {
        "event_id": event_id,
        "type": event.type,
        "thread_id": event.thread_id,
        "tenant": event.tenant,
        "graph": event.graph,
        "payload": event.payload if event.stored is None else event.stored,
    }


def pg_event_rows(events: Sequence[NewEvent]) -> list[dict[str, Any]]:
    """The rows `PG_RECORD` takes (``:events``), for a statement that records events itself."""
    return [_as_json(e, True) for e in events]


async def record_events(
    conn: AsyncConnection, events: Sequence[NewEvent], *, global_webhook_url: str | None
) -> None:
    """Write ``events`` and their webhook deliveries inside the caller's transaction.

    Deliveries go to ``global_webhook_url`` (HITL_WEBHOOK_URL) and to each thread's own
    ``webhook``, once per distinct URL. On PostgreSQL, listeners are notified at commit.
    """
    if not events:
        return
    pg = conn.dialect.name == "postgresql"
    rows = [_as_json(e, pg) for e in events]
    with wrap_db_errors():
        if pg:
            params = {"events": rows, "global_url": global_webhook_url}
            await fetch(conn, PG_RECORD, params)
            return
        ids = list((await conn.execute(SQLITE_INSERT_EVENTS, rows)).scalars())
        await conn.execute(SQLITE_INSERT_DELIVERIES, {"ids": ids, "global_url": global_webhook_url})


@dataclass(frozen=True, slots=True)
class EventLog:
    """What use cases need to record events: the settings they depend on, bound once."""

    public_url: str
    webhook_url: str | None = None

    async def record(self, conn: AsyncConnection, events: Sequence[NewEvent]) -> None:
        await record_events(conn, events, global_webhook_url=self.webhook_url)
