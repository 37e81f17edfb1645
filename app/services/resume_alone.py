"""A waiting request's answer to a thread's only question, as ONE statement outside a transaction.

The general resume is a transaction: BEGIN, the compare-and-set of the answer, the run claimed
for this process (`RunHere.enqueue`), the head it resumes from, the question's event, COMMIT:
six round trips. When the request waits with a free slot here, answers with a bare value, sends
no Idempotency-Key, and the thread waits on exactly one question without a JSON Schema (a
schema is checked in Python, before anything may be kept), `PG_RESUME_ALONE` does all of it
in one statement, atomic on its own:

- the answer, compare-and-set as in `ANSWER_THE_ONLY_PENDING` (nothing pending, several
  pending, a schema, another tenant's thread: no row, nothing written; the general path then
  says why);
- the run, claimed for this worker; when the thread has an active run already, it gets
  ``rerun`` or stays queued, as `PG_ENQUEUE` does, workers are woken, and the thread is marked
  queued (the request then waits for it like any other);
- the thread's status, the run's answers (the stored ones and this one), the head checkpoint
  with its writes (read from the statement's snapshot, which the claim keeps current);
- the ``interrupt.resolved`` event with its deliveries and NOTIFY, stored exactly as
  `app.services.events.interrupt_resolved` would build it.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.checkpoint.sql_queries import pg_head_text, tuples_from_rows, tuples_query
from app.db.driver import fetch_alone
from app.db.errors import wrap_db_errors
from app.db.tables import JSON
from app.queue import ClaimedRun, RunId, WorkerId
from app.queue.sql import CLAIMED_RUN_VALUES, INSERT_CLAIMED_RUN
from app.services.events import PG_EVENTS_AFTER_INSERT, EventLog, EventType
from app.services.local_runs import RunHere
from app.services.run_saver import PrefetchedHead
from app.services.thread_rows import thread_from_row
from app.services.views import Outcome, Thread

__all__ = ["PG_RESUME_ALONE", "resume_alone"]

logger = logging.getLogger(__name__)

#: The head's columns (`tuples_query`'s), renamed apart from the thread's as ``h_<name>``.
_HEAD_COLUMNS = tuple(c.name for c in tuples_query("head").selected_columns)

#: ``datetime.isoformat()`` of a UTC timestamp (no fraction when it is zero), as events store it.
_ISO = """
    to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN extract(microseconds FROM {t}) % 1000000 = 0 THEN ''
            ELSE to_char({t} AT TIME ZONE 'UTC', '.US') END
    || '+00:00'
"""

PG_RESUME_ALONE = (
    sa.text(
        f"""
    WITH mine AS MATERIALIZED (
        -- The thread's questions by thread id (its index), then filtered.
        SELECT id, status, schema FROM interrupts
        WHERE thread_id = :thread_id
            AND (CAST(:tenant AS text) IS NULL OR tenant = CAST(:tenant AS text))
    ), pending AS (
        SELECT id, schema FROM mine WHERE status = 'pending'
    ), won AS (
        UPDATE interrupts
        SET status = 'answered', answer = :answer, answered_by = :answered_by,
            request_id = :request_id, answered_at = now()
        WHERE id = (SELECT id FROM pending LIMIT 1) AND status = 'pending'
            AND (SELECT count(*) FROM pending) = 1
            AND (SELECT schema FROM pending LIMIT 1) IS NULL
        RETURNING id, thread_id, tenant, graph, node, value, schema, expires_at, answer
    ), claimed AS (
        {INSERT_CLAIMED_RUN}
        SELECT thread_id, {CLAIMED_RUN_VALUES}
        FROM won
        ON CONFLICT (thread_id) WHERE status IN ('queued', 'running')
            DO UPDATE SET rerun = (runs.status = 'running')
        -- Inserted (xmax 0): claimed for this worker; else the thread's active run.
        RETURNING id, thread_id, attempts, CAST(xmax AS text) = '0' AS mine
    ), woken AS (
        SELECT pg_notify('hitl_runs', '') FROM claimed WHERE NOT mine
    ), th AS (
        UPDATE threads AS t
        SET status = CASE WHEN t.status = 'cancelled' THEN t.status
                          WHEN c.mine THEN 'running'
                          WHEN t.status = 'interrupted' THEN 'queued'
                          ELSE t.status END,
            updated_at = now()
        FROM claimed AS c
        WHERE t.thread_id = c.thread_id
        RETURNING t.thread_id, t.graph, t.status, t.values, t.next, t.metadata AS metadata_,
            t.error, t.created_at, t.updated_at, t.tenant, t.input, c.id AS run_id,
            c.attempts, c.mine
    ), new_events AS (
        INSERT INTO events (event_id, type, thread_id, tenant, graph, payload, tx)
        SELECT '', '{EventType.INTERRUPT_RESOLVED.value}', won.thread_id, won.tenant, won.graph,
            jsonb_build_array(
                CAST(:public_url AS text), won.id,
                jsonb_build_object(
                    'node', won.node, 'value', won.value, 'schema', won.schema,
                    'expires_at', {_ISO.format(t="won.expires_at")},
                    'answer', won.answer, 'answered_by', CAST(:answered_by AS text)
                )
            ),
            CAST(CAST(pg_current_xact_id() AS text) AS bigint)
        FROM won WHERE CAST(:record_events AS boolean)
        RETURNING id, thread_id
    ), {PG_EVENTS_AFTER_INSERT}
    SELECT th.*,
        -- The answers the run delivers: those stored before, and this one.
        coalesce((
            SELECT jsonb_object_agg(i.id, i.answer) FROM (
                SELECT id, answer, status, has_default, consumed_at FROM interrupts
                WHERE interrupts.thread_id = :thread_id OFFSET 0
            ) AS i
            WHERE i.consumed_at IS NULL
                AND (i.status = 'answered' OR (i.status = 'expired' AND i.has_default))
        ), '{{}}') || (SELECT jsonb_object_agg(id, answer) FROM won) AS answers,
        (SELECT count(*) FROM woken) AS woken, (SELECT count(*) FROM notified) AS notified,
        {", ".join(f"h.{c} AS h_{c}" for c in _HEAD_COLUMNS)}
    FROM th LEFT JOIN ({pg_head_text()}) AS h ON th.mine
    """
    )
    .bindparams(
        # Typed: a parameter used in two places must be deduced one type in both.
        sa.bindparam("thread_id", type_=sa.String),
        sa.bindparam("tenant", type_=sa.String),
        sa.bindparam("answer", type_=JSON),
        sa.bindparam("answered_by", type_=sa.String),
        sa.bindparam("request_id", type_=sa.String),
        sa.bindparam("worker_id", type_=sa.String),
        sa.bindparam("lease_seconds", type_=sa.Float),
        sa.bindparam("public_url", type_=sa.String),
        sa.bindparam("record_events", type_=sa.Boolean),
        sa.bindparam("global_url", type_=sa.String),
        sa.bindparam("ns", value="", type_=sa.String),
    )
    .columns(answers=JSON, values=JSON, next=JSON, metadata_=JSON, error=JSON, input=JSON)
)


async def resume_alone(
    engine: AsyncEngine,
    here: RunHere,
    thread_id: str,
    value: Any,
    *,
    tenant: str | None,
    answered_by: str | None,
    request_id: str | None,
    events: EventLog | None,
) -> Outcome[Thread] | None:
    """Answer ``thread_id``'s only question with ``value`` and claim its run for ``here``'s
    slot, in one statement; the outcome (202), or None with nothing written (the general path
    explains why). When the thread has an active run, the run is queued instead and ``here``
    claims nothing (the request waits for it)."""
    slot = here.slot
    if slot is None:
        return None
    params = {
        "thread_id": thread_id,
        "tenant": tenant,
        "answer": value,
        "answered_by": answered_by,
        "request_id": request_id,
        "worker_id": slot.worker_id,
        "lease_seconds": float(slot.lease_seconds),
        "public_url": events.public_url if events is not None else "",
        "record_events": events is not None,
        "global_url": events.webhook_url if events is not None else None,
    }
    with wrap_db_errors():
        rows = await fetch_alone(engine, PG_RESUME_ALONE, params)
    if not rows:
        return None
    first = rows[0]
    if first.mine:
        heads = [
            SimpleNamespace(**{c: r._mapping[f"h_{c}"] for c in _HEAD_COLUMNS})
            for r in rows
            if r.h_kind is not None
        ]
        try:
            tuples = tuples_from_rows(heads)  # type: ignore[arg-type]
            prefetched: PrefetchedHead | None = PrefetchedHead(
                thread_id, tuples[0] if tuples else None
            )
        except Exception:  # stored data it cannot decode: the run reads (and fails on) it
            logger.warning("thread %s: head not prefetched", thread_id, exc_info=True)
            prefetched = None
        here.claimed = ClaimedRun(
            id=RunId(int(first.run_id)),
            thread_id=first.thread_id,
            worker_id=WorkerId(slot.worker_id),
            attempts=int(first.attempts),
            graph=first.graph,
            tenant=first.tenant,
            thread_status=first.status,
            input=first.input,
            started=bool(heads),
            answers=dict(first.answers or {}),
            prefetched=prefetched,
        )
    else:
        here.give_back()
    return Outcome(thread_from_row(first, []), status_code=202)
