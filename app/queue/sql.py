"""Every statement of the run queue, named, one line of why each (procrastinate's queries.sql).

Two dialects. PostgreSQL does each operation in one statement (data-modifying CTEs, ``FOR
UPDATE SKIP LOCKED``, ``pg_notify`` delivered at commit). SQLite has a single writer, so
operations are short sequences of statements inside one ``BEGIN IMMEDIATE`` transaction.

Invariants kept here:
    * lease times come from the database clock, never from the worker's clock;
    * every write of a claimed run is fenced on ``worker_id = :worker_id AND status = 'running'``
      (a worker that lost its lease matches no row and writes nothing);
    * at most one active (queued or running) run per thread: ``ux_runs_active_thread``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import TextualSelect

from app.db.tables import JSON, UtcDateTime

__all__ = [
    "CLAIMED_RUN_VALUES",
    "FINISHED_RUN_CTES",
    "INSERT_CLAIMED_RUN",
    "NOTIFY_CHANNEL",
    "PG_CLAIM",
    "PG_ENQUEUE",
    "PG_ENQUEUE_CLAIMED",
    "PG_FINISH",
    "PG_HEARTBEAT",
    "PG_INSERT_THREAD_CLAIMED",
    "PG_NOTIFY",
    "PG_REAP",
    "PG_RELEASE",
    "SQLITE_CLAIM_RUN",
    "SQLITE_CLAIM_THREAD",
    "SQLITE_ENQUEUE",
    "SQLITE_FINISH",
    "SQLITE_HEARTBEAT",
    "SQLITE_REAP_RUNS",
    "SQLITE_REAP_THREAD",
    "SQLITE_RELEASE_RUN",
    "SQLITE_RELEASE_THREAD",
    "SQLITE_REQUEUE",
    "SQLITE_UNDELIVERED_ANSWERS",
    "seconds_from_now",
]

#: The LISTEN/NOTIFY channel that wakes idle workers when a run is queued.
NOTIFY_CHANNEL = "hitl_runs"

#: A run inserted already claimed by ``:worker_id``, its lease ``:lease_seconds`` on the
#: database clock: ``{INSERT_CLAIMED_RUN} SELECT <thread id>, {CLAIMED_RUN_VALUES} ...``.
INSERT_CLAIMED_RUN = (
    "INSERT INTO runs (thread_id, status, rerun, attempts, worker_id, started_at, lease_expires_at)"
)
CLAIMED_RUN_VALUES = (
    "'running', false, 0, :worker_id, now(), now() + make_interval(secs => :lease_seconds)"
)

# The database clock on SQLite, in the format the schema's server defaults use.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
# now() + lease on SQLite; :lease_modifier is "+<seconds> seconds".
_SQLITE_LEASE = "strftime('%Y-%m-%d %H:%M:%f', 'now', :lease_modifier)"
# Set on a thread whose run was given up after too many lost leases.
# (No quote characters: it is spliced into SQL text.)
_ABANDONED_ERROR = "The run was given up: its worker stopped heartbeating too many times in a row."


class seconds_from_now(FunctionElement[datetime]):
    """The database clock plus a number of seconds (NULL seconds give NULL): deadlines."""

    type = UtcDateTime()
    inherit_cache = True


@compiles(seconds_from_now, "postgresql")
def _seconds_from_now_pg(element: seconds_from_now, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(now() + make_interval(secs => CAST({seconds} AS double precision)))"


@compiles(seconds_from_now, "sqlite")
def _seconds_from_now_sqlite(element: seconds_from_now, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '+' || ({seconds}) || ' seconds')"


def _json_columns(clause: TextClause, *names: str) -> TextualSelect:
    """Type JSON result columns so both drivers hand back decoded values."""
    return clause.columns(**dict.fromkeys(names, JSON))


# --- PostgreSQL -------------------------------------------------------------------------

#: Queue a run of a thread inside the caller's transaction; a run already running gets
#: ``rerun`` (requeue when it finishes), a queued one is left alone. Wakes workers at commit.
PG_ENQUEUE = sa.text(
    """
    WITH queued AS (
        INSERT INTO runs (thread_id, status, rerun, attempts)
        VALUES (:thread_id, 'queued', false, 0)
        ON CONFLICT (thread_id) WHERE status IN ('queued', 'running')
        DO UPDATE SET rerun = (runs.status = 'running')
        RETURNING id
    )
    SELECT queued.id, pg_notify('hitl_runs', '') IS NULL AS notified FROM queued
    """
)

# The claimed run's thread is marked running (a cancelled one stays cancelled) and everything
# execution needs comes back: graph, input, started?, and the undelivered answers (a human's,
# or the default an expired deadline applied). Follows a ``claimed`` CTE (id, thread_id,
# attempts).
_CLAIMED_THREAD = """
    UPDATE threads AS t
    SET status = CASE WHEN t.status = 'cancelled' THEN t.status ELSE 'running' END,
        updated_at = now()
    FROM claimed
    WHERE t.thread_id = claimed.thread_id
    RETURNING claimed.id, claimed.thread_id, claimed.attempts, t.graph, t.tenant,
        t.status, t.input, t.values, t.next, t.metadata AS metadata_, t.error, t.created_at,
        t.updated_at,
        EXISTS (
            SELECT 1 FROM checkpoints AS c WHERE c.thread_id = t.thread_id AND c.ns = ''
        ) AS started,
        (
            -- The thread's questions by thread id (OFFSET 0 keeps the status conditions out
            -- of the scan: on the status index they read every answered question).
            SELECT jsonb_object_agg(i.id, i.answer) FROM (
                SELECT id, answer, status, has_default, consumed_at FROM interrupts
                WHERE interrupts.thread_id = t.thread_id OFFSET 0
            ) AS i
            WHERE i.consumed_at IS NULL
                AND (i.status = 'answered' OR (i.status = 'expired' AND i.has_default))
        ) AS answers
"""

#: CTEs ``fin`` (the run, deleted; fenced) and ``again`` (re-queued when ``rerun``), for a
#: statement that ends a run; ``fin.rerun`` says which.
FINISHED_RUN_CTES = """
    fin AS (
        DELETE FROM runs
        WHERE id = :run_id AND worker_id = :worker_id AND status = 'running'
        RETURNING id, thread_id, rerun, attempts, created_at
    ), again AS (
        INSERT INTO runs (id, thread_id, status, rerun, attempts, created_at)
        SELECT id, thread_id, 'queued', false, attempts, created_at FROM fin WHERE rerun
        RETURNING pg_notify('hitl_runs', '') IS NULL AS notified
    )
"""

_CLAIMED_JSON = ("input", "answers", "values", "next", "metadata_", "error")

#: Claim the oldest queued run in one statement: lease from now(), thread marked running.
PG_CLAIM = _json_columns(
    sa.text(
        f"""
        WITH claimed AS (
            UPDATE runs
            SET status = 'running', worker_id = :worker_id, started_at = now(),
                lease_expires_at = now() + make_interval(secs => :lease_seconds)
            WHERE id = (
                SELECT id FROM runs WHERE status = 'queued'
                ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
            )
            RETURNING id, thread_id, attempts
        )
        {_CLAIMED_THREAD}
        """
    ),
    *_CLAIMED_JSON,
)

#: Queue a run already claimed by :worker_id, inside the caller's transaction: the process
#: that queues it runs it itself (``?wait=true``), so no NOTIFY and no claim. Nothing is
#: returned when the thread already has an active run (the caller then queues normally).
PG_ENQUEUE_CLAIMED = _json_columns(
    sa.text(
        f"""
        WITH claimed AS (
            {INSERT_CLAIMED_RUN}
            VALUES (:thread_id, {CLAIMED_RUN_VALUES})
            ON CONFLICT (thread_id) WHERE status IN ('queued', 'running') DO NOTHING
            RETURNING id, thread_id, attempts
        )
        {_CLAIMED_THREAD}
        """
    ),
    *_CLAIMED_JSON,
)

#: A new thread with its first run already claimed by :worker_id, as ONE statement: run in
#: autocommit it costs one round trip (no BEGIN/COMMIT). Nothing is returned when the thread
#: id is taken (the caller then goes the usual way, which knows what to answer).
PG_INSERT_THREAD_CLAIMED = (
    sa.text(
        f"""
    WITH t AS (
        INSERT INTO threads (thread_id, tenant, graph, status, input, next, metadata, webhook)
        VALUES (:thread_id, :tenant, :graph, 'running', :input, :next, :metadata, :webhook)
        ON CONFLICT (thread_id) DO NOTHING
        RETURNING threads.thread_id, threads.graph, threads.status, threads.values,
            threads.next, threads.metadata AS metadata_, threads.error, threads.created_at,
            threads.updated_at
    ), r AS (
        {INSERT_CLAIMED_RUN}
        SELECT thread_id, {CLAIMED_RUN_VALUES}
        FROM t
        RETURNING id, attempts
    )
    SELECT t.*, r.id AS run_id, r.attempts FROM t, r
    """
    )
    .bindparams(
        sa.bindparam("input", type_=JSON),
        sa.bindparam("next", type_=JSON),
        sa.bindparam("metadata", type_=JSON),
        sa.bindparam("worker_id", type_=sa.Text),
        sa.bindparam("lease_seconds", type_=sa.Float),
    )
    .columns(
        values=JSON,
        next=JSON,
        metadata_=JSON,
        error=JSON,
        created_at=UtcDateTime(),
        updated_at=UtcDateTime(),
    )
)

#: Extend the leases of this worker's runs; the ids not returned were lost (fenced).
PG_HEARTBEAT = sa.text(
    """
    UPDATE runs SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
    WHERE id IN :run_ids AND worker_id = :worker_id AND status = 'running'
    RETURNING id
    """
).bindparams(sa.bindparam("run_ids", expanding=True))

#: End a run inside the caller's transaction (fenced): a finished run is deleted (the thread
#: and its events say how it went; a paused thread keeps no run row). A run with ``rerun``
#: goes back to the queue instead, with the same id, since an answer arrived that this
#: execution did not see. DELETE (not UPDATE, then DELETE) so that a ``rerun`` set by an
#: answer committed meanwhile is read from the row's latest version.
#: Returns the run's status: :status, or ``queued``.
PG_FINISH = sa.text(
    f"""
    WITH {FINISHED_RUN_CTES}
    SELECT CASE WHEN rerun THEN 'queued' ELSE CAST(:status AS text) END AS status FROM fin
    """
)

#: Wake idle workers at commit (a run was requeued).
PG_NOTIFY = sa.text("SELECT pg_notify('hitl_runs', '')")

#: Hand a run back to the queue on shutdown (fenced), its thread back to queued; wakes workers.
PG_RELEASE = sa.text(
    """
    WITH released AS (
        UPDATE runs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL
        WHERE id = :run_id AND worker_id = :worker_id AND status = 'running'
        RETURNING thread_id
    ), requeued AS (
        UPDATE threads AS t SET status = 'queued', updated_at = now()
        FROM released WHERE t.thread_id = released.thread_id AND t.status = 'running'
    )
    SELECT released.thread_id, pg_notify('hitl_runs', '') IS NULL AS notified FROM released
    """
)

#: Requeue runs whose lease expired (their worker died), attempts + 1; give a run up (run
#: and thread failed) once it has been abandoned :max_attempts times. Wakes workers.
#: The reaper's own runs are spared (alive, maybe late) unless it gave them up (:orphans).
PG_REAP = sa.text(
    f"""
    WITH expired AS (
        SELECT id FROM runs
        WHERE status = 'running' AND lease_expires_at < now()
            AND (worker_id <> :reaper OR id IN :orphans)
        ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    ), reaped AS (
        UPDATE runs AS r
        SET status = CASE WHEN r.attempts + 1 >= :max_attempts THEN 'failed' ELSE 'queued' END,
            finished_at = CASE WHEN r.attempts + 1 >= :max_attempts THEN now() END,
            attempts = r.attempts + 1, rerun = false, worker_id = NULL, lease_expires_at = NULL
        FROM expired WHERE r.id = expired.id
        RETURNING r.id, r.thread_id, r.status
    ), threads_reaped AS (
        UPDATE threads AS t
        SET status = CASE WHEN reaped.status = 'failed' THEN 'failed' ELSE 'queued' END,
            error = CASE WHEN reaped.status = 'failed'
                THEN jsonb_build_object('type', 'RunAbandonedError',
                                        'message', '{_ABANDONED_ERROR}')
                ELSE t.error END,
            updated_at = now()
        FROM reaped WHERE t.thread_id = reaped.thread_id AND t.status = 'running'
    )
    SELECT reaped.id, reaped.thread_id, reaped.status,
        pg_notify('hitl_runs', '') IS NULL AS notified
    FROM reaped
    """
).bindparams(sa.bindparam("orphans", expanding=True))

# --- SQLite -----------------------------------------------------------------------------

#: Queue a run inside the caller's transaction (as PG_ENQUEUE, without NOTIFY).
SQLITE_ENQUEUE = sa.text(
    """
    INSERT INTO runs (thread_id, status, rerun, attempts)
    VALUES (:thread_id, 'queued', 0, 0)
    ON CONFLICT (thread_id) WHERE status IN ('queued', 'running')
    DO UPDATE SET rerun = (runs.status = 'running')
    RETURNING id
    """
)

#: Claim the oldest queued run (the caller holds the write lock: BEGIN IMMEDIATE).
SQLITE_CLAIM_RUN = sa.text(
    f"""
    UPDATE runs
    SET status = 'running', worker_id = :worker_id, started_at = {_SQLITE_NOW},
        lease_expires_at = {_SQLITE_LEASE}
    WHERE id = (SELECT id FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1)
    RETURNING id, thread_id, attempts
    """
)

#: Mark the claimed run's thread running; return what execution needs.
SQLITE_CLAIM_THREAD = _json_columns(
    sa.text(
        f"""
        UPDATE threads
        SET status = CASE WHEN status = 'cancelled' THEN status ELSE 'running' END,
            updated_at = {_SQLITE_NOW}
        WHERE thread_id = :thread_id
        RETURNING graph, tenant, status, input,
            EXISTS (
                SELECT 1 FROM checkpoints AS c
                WHERE c.thread_id = threads.thread_id AND c.ns = ''
            ) AS started
        """
    ),
    "input",
)

#: Answers no run has delivered to the graph yet: a human's, or a default its deadline applied.
SQLITE_UNDELIVERED_ANSWERS = _json_columns(
    sa.text(
        """
        SELECT id, answer FROM interrupts
        WHERE thread_id = :thread_id AND consumed_at IS NULL
            AND (status = 'answered' OR (status = 'expired' AND has_default))
        """
    ),
    "answer",
)

#: As PG_HEARTBEAT.
SQLITE_HEARTBEAT = sa.text(
    f"""
    UPDATE runs SET lease_expires_at = {_SQLITE_LEASE}
    WHERE id IN :run_ids AND worker_id = :worker_id AND status = 'running'
    RETURNING id
    """
).bindparams(sa.bindparam("run_ids", expanding=True))

#: As PG_FINISH, in two statements: the run deleted (fenced) ...
SQLITE_FINISH = sa.text(
    """
    DELETE FROM runs
    WHERE id = :run_id AND worker_id = :worker_id AND status = 'running'
    RETURNING id, thread_id, rerun, attempts, created_at
    """
)
#: ... and put back in the queue, with the same id, when ``rerun``.
SQLITE_REQUEUE = sa.text(
    """
    INSERT INTO runs (id, thread_id, status, rerun, attempts, created_at)
    VALUES (:id, :thread_id, 'queued', 0, :attempts, :created_at)
    """
)

#: Hand a run back on shutdown (fenced).
SQLITE_RELEASE_RUN = sa.text(
    """
    UPDATE runs SET status = 'queued', worker_id = NULL, lease_expires_at = NULL
    WHERE id = :run_id AND worker_id = :worker_id AND status = 'running'
    RETURNING thread_id
    """
)

#: The handed-back run's thread is queued again.
SQLITE_RELEASE_THREAD = sa.text(
    f"""
    UPDATE threads SET status = 'queued', updated_at = {_SQLITE_NOW}
    WHERE thread_id = :thread_id AND status = 'running'
    """
)

#: Requeue (or give up) runs whose lease expired, as PG_REAP.
SQLITE_REAP_RUNS = sa.text(
    f"""
    UPDATE runs
    SET status = CASE WHEN attempts + 1 >= :max_attempts THEN 'failed' ELSE 'queued' END,
        finished_at = CASE WHEN attempts + 1 >= :max_attempts THEN {_SQLITE_NOW} END,
        attempts = attempts + 1, rerun = 0, worker_id = NULL, lease_expires_at = NULL
    WHERE id IN (
        SELECT id FROM runs
        WHERE status = 'running' AND lease_expires_at < {_SQLITE_NOW}
            AND (worker_id <> :reaper OR id IN :orphans)
        ORDER BY id LIMIT :limit
    )
    RETURNING id, thread_id, status
    """
).bindparams(sa.bindparam("orphans", expanding=True))

#: The reaped run's thread: queued again, or failed when its run was given up.
SQLITE_REAP_THREAD = sa.text(
    f"""
    UPDATE threads
    SET status = CASE WHEN :run_status = 'failed' THEN 'failed' ELSE 'queued' END,
        error = CASE WHEN :run_status = 'failed'
            THEN json_object('type', 'RunAbandonedError', 'message', '{_ABANDONED_ERROR}')
            ELSE error END,
        updated_at = {_SQLITE_NOW}
    WHERE thread_id = :thread_id AND status = 'running'
    """
)
