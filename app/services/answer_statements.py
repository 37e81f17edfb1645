"""The statements of answering: the resume's first look, the compare-and-set, the thread's mark.

Named constants (one line of why each) for `app.services.interrupts`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.db.tables import JSON, InterruptRow, ThreadRow, utcnow
from app.services.thread_rows import THREAD_COLUMNS
from app.services.views import InterruptStatus, ThreadStatus

__all__ = [
    "ANSWER",
    "ANSWER_THE_ONLY_PENDING",
    "MARK_QUEUED",
    "STATUS_AND_PENDING",
    "STATUS_AND_PENDING_OF_TENANT",
]


def _status_and_pending(tenant: bool) -> sa.Select[Any]:
    """The thread's status with its pending interrupts (one row each, or one with NULLs)."""
    query = (
        sa.select(ThreadRow.status, InterruptRow.id, InterruptRow.schema)
        .select_from(ThreadRow)
        .outerjoin(
            InterruptRow,
            sa.and_(
                InterruptRow.thread_id == ThreadRow.thread_id,
                InterruptRow.status == InterruptStatus.PENDING.value,
            ),
        )
        .where(ThreadRow.thread_id == sa.bindparam("thread_id"))
    )
    return query.where(ThreadRow.tenant == sa.bindparam("tenant")) if tenant else query


# A resume's first look, one round trip (any tenant / one tenant's).
STATUS_AND_PENDING = _status_and_pending(tenant=False)
STATUS_AND_PENDING_OF_TENANT = _status_and_pending(tenant=True)

#: What answering writes (who, when, from which request, the answer) ...
_ANSWER = {
    "status": InterruptStatus.ANSWERED.value,
    "answer": sa.bindparam("b_answer", type_=JSON),
    "answered_by": sa.bindparam("b_answered_by"),
    "request_id": sa.bindparam("b_request_id"),
    "answered_at": utcnow(),
}
#: ... and what it hands back (the question's event is built from it).
_ANSWERED = (
    InterruptRow.id,
    InterruptRow.thread_id,
    InterruptRow.tenant,
    InterruptRow.graph,
    InterruptRow.node,
    InterruptRow.value,
    InterruptRow.schema,
    InterruptRow.expires_at,
)

# Compare-and-set: answer an interrupt only while it is pending (the exactly-once guard).
ANSWER = (
    sa.update(InterruptRow)
    .where(
        InterruptRow.id == sa.bindparam("b_id"),
        InterruptRow.thread_id == sa.bindparam("b_thread_id"),
        InterruptRow.status == InterruptStatus.PENDING.value,
    )
    .values(_ANSWER)
    .returning(*_ANSWERED)
)

# The thread now has work to do; a thread already queued or running keeps its status.
MARK_QUEUED = (
    sa.update(ThreadRow)
    .where(
        ThreadRow.thread_id == sa.bindparam("b_thread_id"),
        ThreadRow.status == ThreadStatus.INTERRUPTED.value,
    )
    .values(status=ThreadStatus.QUEUED.value, updated_at=utcnow())
    .returning(*THREAD_COLUMNS)  # the answer's response without reading the thread back
)


def _answer_the_only_pending(tenant: bool) -> Any:
    """A bare value for a thread that waits on exactly one question: the look and the
    compare-and-set in one statement. No row: the usual look explains why (not found, not
    interrupted, several pending, answered meanwhile).

    The thread's questions are found by thread id alone (its index), then filtered: a lookup
    on ``status = 'pending'`` may be planned on the list index, whose pending range collects
    the entries of every question answered since the last vacuum.
    """
    mine = sa.select(InterruptRow.id, InterruptRow.status).where(
        InterruptRow.thread_id == sa.bindparam("b_thread_id")
    )
    if tenant:
        mine = mine.where(InterruptRow.tenant == sa.bindparam("b_tenant"))
    questions = mine.cte("mine").prefix_with("MATERIALIZED")
    pending = (
        sa.select(questions.c.id)
        .where(questions.c.status == InterruptStatus.PENDING.value)
        .cte("pending")
    )
    return (
        sa.update(InterruptRow)
        .where(
            InterruptRow.id == sa.select(pending.c.id).limit(1).scalar_subquery(),
            InterruptRow.status == InterruptStatus.PENDING.value,
            sa.select(sa.func.count()).select_from(pending).scalar_subquery() == 1,
        )
        .values(_ANSWER)
        .returning(*_ANSWERED)
    )


#: Any tenant / one tenant's.
ANSWER_THE_ONLY_PENDING = {
    False: _answer_the_only_pending(False),
    True: _answer_the_only_pending(True),
}
