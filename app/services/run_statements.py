"""The statements that settle a run: its thread, its new questions, its delivered answers.

Named constants (one line of why each), used by `app.services.execution` inside the run's
one final transaction. Deadlines come from the database clock.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.db.tables import JSON, CheckpointRow, InterruptRow, ThreadRow, utcnow
from app.queue.sql import FINISHED_RUN_CTES, seconds_from_now
from app.services.events import PG_EVENTS_AFTER_INSERT
from app.services.thread_rows import THREAD_COLUMNS

__all__ = [
    "CANCEL_RUN",
    "CONSUME_ANSWERS",
    "EXISTING_INTERRUPTS",
    "FAIL_THREAD",
    "GIVEN_UP_THREADS",
    "PG_INSERT_INTERRUPT",
    "PG_INSERT_NEW_INTERRUPT",
    "SETTLE_THREAD",
    "SQLITE_INSERT_INTERRUPT",
]

THREADS: sa.Table = ThreadRow.__table__  # type: ignore[assignment]
INTERRUPTS: sa.Table = InterruptRow.__table__  # type: ignore[assignment]

#: Thread settled by a run: latest values, next nodes, status; returns the thread's columns.
#: A thread cancelled meanwhile keeps its status (and gets no new questions): no row returned. The input is cleared: the
#: run stored a checkpoint, so no later run reads it (storage per paused thread).
SETTLE_THREAD = (
    sa.update(THREADS)
    .where(ThreadRow.thread_id == sa.bindparam("tid"), ThreadRow.status != "cancelled")
    .values(
        {
            "status": sa.bindparam("status"),
            "values": sa.bindparam("values", type_=JSON),
            "next": sa.bindparam("next", type_=JSON),
            "input": sa.null(),
            "error": sa.null(),
            "updated_at": utcnow(),
        }
    )
    .returning(*THREAD_COLUMNS)
)

#: Thread failed by its run: status and error only; values stay those of the last checkpoint.
FAIL_THREAD = (
    sa.update(THREADS)
    .where(ThreadRow.thread_id == sa.bindparam("tid"), ThreadRow.status != "cancelled")
    .values(
        {
            "status": sa.bindparam("status"),
            "error": sa.bindparam("error", type_=JSON),
            "updated_at": utcnow(),
        }
    )
    .returning(*THREAD_COLUMNS)
)

#: A run whose thread was cancelled while it ran: gone (also when an answer re-queued it).
CANCEL_RUN = sa.text("DELETE FROM runs WHERE id = :run_id")

#: Which of these interrupts already have a row (a plain read: never waits on a resume's lock).
EXISTING_INTERRUPTS = sa.select(InterruptRow.id).where(
    InterruptRow.id.in_(sa.bindparam("ids", expanding=True))
)

#: The inbox row of a new question; the deadline is taken from the database clock.
_INTERRUPT_VALUES = {
    "id": sa.bindparam("id"),
    "thread_id": sa.bindparam("thread_id"),
    "tenant": sa.bindparam("tenant"),
    "graph": sa.bindparam("graph"),
    "node": sa.bindparam("node"),
    "ns": sa.bindparam("ns"),
    "checkpoint_id": sa.bindparam("checkpoint_id"),
    "value": sa.bindparam("value", type_=JSON),
    "schema": sa.bindparam("schema", type_=JSON),
    "has_default": sa.bindparam("has_default"),
    "default": sa.bindparam("default", type_=JSON),
    "status": "pending",
    "expires_at": seconds_from_now(sa.bindparam("timeout", type_=sa.Float)),
}
#: Insert a new question (PostgreSQL / SQLite); an id already stored is left alone. Returns
#: the rows inserted, with the deadline the database set.
_INSERTED = (InterruptRow.id, InterruptRow.expires_at, InterruptRow.created_at)
PG_INSERT_INTERRUPT = (
    pg_insert(INTERRUPTS).values(_INTERRUPT_VALUES).on_conflict_do_nothing().returning(*_INSERTED)
)
#: PostgreSQL, one question in one round trip: inserted only when no row has its id yet. The
#: check is a plain read inside the statement, so a question pending from an earlier run
#: (possibly being answered right now) is skipped without waiting on its row's lock.
PG_INSERT_NEW_INTERRUPT = (
    pg_insert(INTERRUPTS)
    .from_select(
        list(_INTERRUPT_VALUES),
        sa.select(
            sa.bindparam("id", type_=sa.String),
            sa.bindparam("thread_id", type_=sa.String),
            sa.bindparam("tenant", type_=sa.String),
            sa.bindparam("graph", type_=sa.String),
            sa.bindparam("node", type_=sa.String),
            sa.bindparam("ns", type_=sa.String),
            sa.bindparam("checkpoint_id", type_=sa.String),
            sa.bindparam("value", type_=JSON),
            sa.bindparam("schema", type_=JSON),
            sa.bindparam("has_default", type_=sa.Boolean),
            sa.bindparam("default", type_=JSON),
            sa.literal("pending"),
            seconds_from_now(sa.bindparam("timeout", type_=sa.Float)),
        ).where(~sa.exists().where(InterruptRow.id == sa.bindparam("id", type_=sa.String))),
    )
    .on_conflict_do_nothing()
    .returning(*_INSERTED)
)
SQLITE_INSERT_INTERRUPT = (
    sqlite_insert(INTERRUPTS)
    .values(_INTERRUPT_VALUES)
    .on_conflict_do_nothing()
    .returning(*_INSERTED)
)

#: Threads whose run was given up (their workers kept vanishing), for their events.
GIVEN_UP_THREADS = sa.select(
    ThreadRow.thread_id, ThreadRow.graph, ThreadRow.tenant, ThreadRow.error
).where(
    ThreadRow.thread_id.in_(sa.bindparam("tids", expanding=True)),
    ThreadRow.status == "failed",
)

#: The answers this run handed to the graph are delivered: no later run sends them again.
CONSUME_ANSWERS = (
    sa.update(INTERRUPTS)
    .where(
        InterruptRow.thread_id == sa.bindparam("tid"),
        InterruptRow.id.in_(sa.bindparam("ids", expanding=True)),
        InterruptRow.consumed_at.is_(None),
    )
    .values({"consumed_at": utcnow()})
)


#: The columns of the checkpoint a run stores (``cp_<column>`` parameters).
CHECKPOINT_COLUMNS = (
    "thread_id",
    "ns",
    "checkpoint_id",
    "parent_id",
    "step",
    "source",
    "data",
    "metadata",
    "created_at",
    "writes",
)
_CHECKPOINTS = CheckpointRow.__table__.c

#: PostgreSQL: a run that ended normally, settled as ONE statement run outside a transaction
#: (no BEGIN/COMMIT round trips), fenced on the lease: the run ends, its row deleted (or back in
#: the queue with NOTIFY when an answer arrived meanwhile: ``rerun``); its thread takes the new
#: values; the questions asked for the first time get their rows (deadline from the database
#: clock; one already stored is skipped without waiting on its lock); the answers delivered are
#: consumed; the run's checkpoint is stored (``cp_present``; as the SQL saver's upsert) with its
#: writes to checkpoints stored before (``:writes``, values in base64; as the saver's); and the
#: outcome's events are recorded (``:events``, as `PG_RECORD`; a question's event only if its
#: row was inserted, ``question``; the thread's only if the run was not requeued).
#: ``run_status`` NULL: the lease was lost, nothing written. Thread columns NULL: the thread was
#: cancelled meanwhile.
PG_SETTLE_ALONE = sa.text(
    f"""
    WITH {FINISHED_RUN_CTES},
    th AS (
        UPDATE threads
        SET status = CASE WHEN (SELECT rerun FROM fin) THEN 'queued' ELSE :thread_status END,
            input = NULL, values = :values, next = :next, error = NULL, updated_at = now()
        WHERE thread_id = :tid AND status <> 'cancelled' AND EXISTS (SELECT 1 FROM fin)
        RETURNING threads.thread_id, threads.graph, threads.status, threads.values,
            threads.next, threads.metadata AS metadata_, threads.error, threads.created_at,
            threads.updated_at
    ), asked AS (
        INSERT INTO interrupts (id, thread_id, tenant, graph, node, ns, checkpoint_id, value,
                                schema, has_default, "default", status, expires_at)
        SELECT q.id, :tid, :tenant, :graph, q.node, q.ns, q.checkpoint_id, q.value, q.schema,
            q.has_default, q."default", 'pending',
            now() + make_interval(secs => q.timeout)
        FROM jsonb_to_recordset(:questions) AS q(
            id text, node text, ns text, checkpoint_id text, value jsonb, schema jsonb,
            has_default boolean, "default" jsonb, timeout double precision
        )
        WHERE EXISTS (SELECT 1 FROM th)
            -- A lookup per question (a subplan on the key), never a join: planned as an anti
            -- join, the recordset's default estimate of 100 rows made it scan the table.
            AND (SELECT i.id FROM interrupts AS i WHERE i.id = q.id) IS NULL
        ON CONFLICT DO NOTHING
        RETURNING id, expires_at, created_at
    ), consumed AS (
        UPDATE interrupts SET consumed_at = now()
        WHERE thread_id = :tid AND id = ANY(:consume) AND consumed_at IS NULL
            AND EXISTS (SELECT 1 FROM th)
        RETURNING id
    ), cp AS (
        INSERT INTO checkpoints ({", ".join(CHECKPOINT_COLUMNS)})
        SELECT {", ".join(f":cp_{c}" for c in CHECKPOINT_COLUMNS)}
        WHERE CAST(:cp_present AS boolean) AND EXISTS (SELECT 1 FROM fin)
        ON CONFLICT (thread_id, ns, checkpoint_id) DO UPDATE SET
            parent_id = EXCLUDED.parent_id, step = EXCLUDED.step, source = EXCLUDED.source,
            data = EXCLUDED.data, metadata = EXCLUDED.metadata,
            created_at = EXCLUDED.created_at,
            writes = coalesce(EXCLUDED.writes, checkpoints.writes),
            writes_dict = CASE WHEN EXCLUDED.writes IS NULL AND checkpoints.writes IS NOT NULL
                THEN coalesce(checkpoints.writes_dict, checkpoints.data) END
        RETURNING 1
    ), wr AS (
        INSERT INTO checkpoint_writes (thread_id, ns, checkpoint_id, task_id, channel, idx, value)
        SELECT w.thread_id, w.ns, w.checkpoint_id, w.task_id, w.channel,
            coalesce((
                SELECT max(x.idx) + 1 FROM checkpoint_writes AS x
                WHERE x.thread_id = w.thread_id AND x.ns = w.ns
                    AND x.checkpoint_id = w.checkpoint_id
            ), 0) + w.i,
            decode(w.value, 'base64')
        FROM jsonb_to_recordset(:writes) AS w(
            thread_id text, ns text, checkpoint_id text, task_id text, channel text, i integer,
            value text
        )
        WHERE EXISTS (SELECT 1 FROM fin)
        ON CONFLICT (thread_id, ns, checkpoint_id, task_id, channel)
            DO UPDATE SET value = EXCLUDED.value
        RETURNING 1
    ), new_events AS (
        INSERT INTO events (event_id, type, thread_id, tenant, graph, payload, tx)
        SELECT e->>'event_id', e->>'type', e->>'thread_id', e->>'tenant', e->>'graph',
            e->'payload', CAST(CAST(pg_current_xact_id() AS text) AS bigint)
        FROM jsonb_array_elements(CAST(:events AS jsonb)) WITH ORDINALITY AS r(e, n)
        WHERE EXISTS (SELECT 1 FROM th) AND CASE
            WHEN e->>'question' IS NOT NULL THEN e->>'question' IN (SELECT id FROM asked)
            ELSE NOT (SELECT rerun FROM fin) END
        ORDER BY n
        RETURNING id, thread_id
    ), {PG_EVENTS_AFTER_INSERT}

    SELECT (SELECT CASE WHEN rerun THEN 'queued' ELSE 'done' END FROM fin) AS run_status, th.*,
        (SELECT array_agg(id) FROM asked) AS asked_ids,
        (SELECT array_agg(expires_at) FROM asked) AS asked_expires,
        (SELECT array_agg(created_at) FROM asked) AS asked_created,
        (SELECT count(*) FROM cp) AS checkpoints, (SELECT count(*) FROM wr) AS writes,
        (SELECT count(*) FROM notified) AS notified
    FROM (SELECT 1) AS one LEFT JOIN th ON true
    """
).bindparams(
    sa.bindparam("run_id", type_=sa.BigInteger),
    sa.bindparam("worker_id", type_=sa.Text),
    sa.bindparam("thread_status", type_=sa.Text),
    sa.bindparam("tid", type_=sa.Text),
    sa.bindparam("tenant", type_=sa.Text),
    sa.bindparam("graph", type_=sa.Text),
    sa.bindparam("values", type_=JSON),
    sa.bindparam("next", type_=JSON),
    sa.bindparam("questions", type_=JSON),
    sa.bindparam("consume", type_=ARRAY(sa.Text)),
    sa.bindparam("cp_present", type_=sa.Boolean),
    *(sa.bindparam(f"cp_{c}", type_=_CHECKPOINTS[c].type) for c in CHECKPOINT_COLUMNS),
    sa.bindparam("writes", type_=JSON),
    sa.bindparam("events", type_=JSON),
    sa.bindparam("global_url", type_=sa.Text),
)
