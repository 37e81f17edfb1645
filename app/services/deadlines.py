"""Deadlines: a pending interrupt whose ``expires_at`` passed (database clock) is settled.

With a default, the interrupt becomes ``expired`` with ``answer = default`` and a run is queued:
the default reaches the graph exactly like a human answer (execution collects answered-or-
defaulted, unconsumed answers). Without one, its thread fails with ``InterruptExpired`` and the
thread's other pending questions are withdrawn (``cancelled``).

Exactly one winner. The sweep's compare-and-set (``... WHERE id = :id AND status = 'pending'``)
is the same guard a human answer uses, and it holds the row locks of the interrupts it settles
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer): whichever commits first wins,
the other matches no row (the human gets 409). Any number of workers may sweep at once.

Failing a thread needs all of its pending questions: if a human is answering one of them right
now (its row is locked), failing the thread would race that answer, so the thread is left for
the next sweep, when the answer has either committed (the thread is no longer ``interrupted``)
or not happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.engine import begin_immediate
from app.db.errors import wrap_db_errors
from app.db.tables import JSON, InterruptRow, RunRow, ThreadRow, utcnow
from app.services.events import EventLog, Fields, interrupt_expired, thread_failed

__all__ = [
    "ANSWERED_BY_DEADLINE",
    "Expiry",
    "expired_error",
    "seconds_to_next_deadline",
    "sweep_expired",
]

#: ``answered_by`` of an interrupt the deadline settled.
ANSWERED_BY_DEADLINE = "deadline"

I = InterruptRow  # noqa: E741 - the table, as in SQL


class EnqueuePort(Protocol):
    """What the sweep needs from the run queue (``app.queue.RunQueue``)."""

    async def enqueue(self, conn: AsyncConnection, thread_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Expiry:
    """An interrupt the sweep settled: resumed with its default, or its thread failed."""

    interrupt_id: str
    thread_id: str
    resumed: bool


_COLUMNS = (
    I.id,
    I.thread_id,
    I.tenant,
    I.graph,
    I.node,
    I.value,
    I.schema,
    I.has_default,
    I.default,
    I.expires_at,
)

#: Due questions, oldest deadline first, locked; rows being answered right now are skipped.
#: A question without a default is only due while its thread is idle (``interrupted``).
SELECT_DUE = (
    sa.select(I.id, I.thread_id, I.has_default, I.node, I.expires_at)
    .where(
        I.status == "pending",
        I.expires_at.is_not(None),
        I.expires_at <= utcnow(),
        sa.or_(
            I.has_default,
            sa.exists().where(
                ThreadRow.thread_id == I.thread_id, ThreadRow.status == "interrupted"
            ),
        ),
    )
    .order_by(I.expires_at, I.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(of=I, skip_locked=True)
)

#: Lock the pending questions of threads about to fail (the ones we can get).
LOCK_PENDING = (
    sa.select(I.id, I.thread_id)
    .where(I.thread_id.in_(sa.bindparam("tids", expanding=True)), I.status == "pending")
    .with_for_update(skip_locked=True)
)

#: How many questions those threads have pending (locked or not).
COUNT_PENDING = (
    sa.select(I.thread_id, sa.func.count())
    .where(I.thread_id.in_(sa.bindparam("tids", expanding=True)), I.status == "pending")
    .group_by(I.thread_id)
)

#: The deadline's compare-and-set: the same guard as a human answer.
EXPIRE = (
    sa.update(I)
    .where(I.id.in_(sa.bindparam("ids", expanding=True)), I.status == "pending")
    .values(
        status="expired",
        answer=sa.case((I.has_default, I.default), else_=sa.null()),
        answered_by=ANSWERED_BY_DEADLINE,
        answered_at=utcnow(),
    )
    .returning(*_COLUMNS)
)

#: The thread has a default answer to deliver; a thread already queued or running keeps its
#: status (its active run is flagged to run again by the enqueue).
MARK_QUEUED = (
    sa.update(ThreadRow)
    .where(ThreadRow.thread_id == sa.bindparam("tid"), ThreadRow.status == "interrupted")
    .values(status="queued", updated_at=utcnow())
)

#: A question expired without a default: its thread fails (only from ``interrupted``).
FAIL_THREAD = (
    sa.update(ThreadRow)
    .where(ThreadRow.thread_id == sa.bindparam("tid"), ThreadRow.status == "interrupted")
    .values(status="failed", error=sa.bindparam("error", type_=JSON), updated_at=utcnow())
    .returning(ThreadRow.thread_id, ThreadRow.graph, ThreadRow.tenant)
)

#: The failed thread's other questions are withdrawn.
CANCEL_SIBLINGS = (
    sa.update(I)
    .where(I.thread_id == sa.bindparam("tid"), I.status == "pending")
    .values(status="cancelled")
    .returning(I.id)
)

#: A failed thread has nothing to run: its queued run is gone.
CANCEL_QUEUED_RUNS = sa.delete(RunRow).where(
    RunRow.thread_id == sa.bindparam("tid"), RunRow.status == "queued"
)


def expired_error(row: Fields) -> dict[str, str]:
    """The thread's error when ``row`` expired without a default."""
    return {
        "type": "InterruptExpired",
        "message": (
            f"Interrupt {row['id']} in node {row['node']!r} expired at "
            f"{row['expires_at'].isoformat()} without an answer, and it has no default."
        ),
    }


async def sweep_expired(
    engine: AsyncEngine, queue: EnqueuePort, events: EventLog | None, *, limit: int = 100
) -> list[Expiry]:
    """Settle up to ``limit`` expired interrupts in one transaction; returns what was settled.

    Records ``interrupt.expired`` (and ``thread.failed``) events when ``events`` is given.
    Safe to run from every worker at once.
    """
    with wrap_db_errors():
        async with begin_immediate(engine) as conn:
            return await _sweep(conn, queue, events, limit)


async def _sweep(
    conn: AsyncConnection, queue: EnqueuePort, events: EventLog | None, limit: int
) -> list[Expiry]:
    due = (await conn.execute(SELECT_DUE, {"limit": limit})).all()
    if not due:
        return []
    ids = [r.id for r in due if r.has_default]
    # A question without a default fails its thread, which needs all of the thread's questions
    # (no human halfway through answering one) and the thread still idle. Otherwise it stays
    # pending for the next sweep.
    failable = await _failable_threads(conn, {r.thread_id for r in due if not r.has_default})
    failed: dict[str, tuple[Fields, dict[str, str]]] = {}
    for row in due:
        if row.has_default or row.thread_id not in failable or row.thread_id in failed:
            continue
        error = expired_error(row._mapping)
        params = {"tid": row.thread_id, "error": error}
        if (failing := (await conn.execute(FAIL_THREAD, params)).first()) is not None:
            failed[row.thread_id] = (failing._mapping, error)
    ids += [r.id for r in due if not r.has_default and r.thread_id in failed]
    expired = [r._mapping for r in await conn.execute(EXPIRE, {"ids": ids})]

    for tid in sorted({row["thread_id"] for row in expired if row["has_default"]} - set(failed)):
        await conn.execute(MARK_QUEUED, {"tid": tid})
        await queue.enqueue(conn, tid)
    withdrawn: dict[str, list[str]] = {}
    for tid in failed:
        withdrawn[tid] = list((await conn.execute(CANCEL_SIBLINGS, {"tid": tid})).scalars())
        await conn.execute(CANCEL_QUEUED_RUNS, {"tid": tid})
    if events is not None:
        url = events.public_url
        new_events = [interrupt_expired(row, public_url=url) for row in expired]
        new_events += [
            thread_failed(row, error=error, cancelled_interrupt_ids=withdrawn[tid], public_url=url)
            for tid, (row, error) in failed.items()
        ]
        await events.record(conn, new_events)
    return [Expiry(r["id"], r["thread_id"], resumed=bool(r["has_default"])) for r in expired]


async def _failable_threads(conn: AsyncConnection, thread_ids: set[str]) -> set[str]:
    """The threads whose every pending question this transaction now holds locked."""
    if not thread_ids:
        return set()
    tids = sorted(thread_ids)
    locked: dict[str, int] = {}
    for row in await conn.execute(LOCK_PENDING, {"tids": tids}):
        locked[row.thread_id] = locked.get(row.thread_id, 0) + 1
    counts = {row[0]: int(row[1]) for row in await conn.execute(COUNT_PENDING, {"tids": tids})}
    return {tid for tid in tids if locked.get(tid, 0) == counts.get(tid, 0) > 0}


#: The earliest pending deadline still ahead, and the database clock. (Passed deadlines the
#: sweep left alone wait for their thread to go idle; they are not what to wake up for.)
_NEXT_DEADLINE = sa.select(sa.func.min(I.expires_at), utcnow()).where(
    I.status == "pending", I.expires_at > utcnow()
)


async def seconds_to_next_deadline(engine: AsyncEngine) -> float | None:
    """How long until the earliest pending deadline by the database clock (None: none ahead)."""
    with wrap_db_errors():
        async with engine.connect() as conn:
            earliest, now = (await conn.execute(_NEXT_DEADLINE)).one()
    if earliest is None:
        return None
    return max((earliest - now).total_seconds(), 0.0)
