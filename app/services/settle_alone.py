"""A run that ended normally, settled on PostgreSQL as ONE statement outside a transaction.

The usual settle is a transaction: BEGIN, the fenced end of the run, its thread, its questions,
the consumed answers, the checkpoint, its writes, the events, COMMIT: up to nine round trips. When the run stores one checkpoint (always, but for subgraphs), `PG_SETTLE_ALONE` does
all of it in one statement, atomic on its own: the fence (no run row of this worker: nothing is
written), the thread, the new questions, the consumed answers, the checkpoint and the writes to
the one it resumed from, the events with their deliveries and NOTIFY.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.checkpoint.sql import BufferedCheckpointer
from app.db.driver import fetch_alone
from app.db.errors import wrap_db_errors
from app.errors import LeaseLostError
from app.queue import ClaimedRun, RunStatus
from app.services.events import (
    EventLog,
    NewEvent,
    interrupt_created,
    pg_event_rows,
    thread_completed,
)
from app.services.questions import question_rows, with_times
from app.services.run_statements import CANCEL_RUN, CHECKPOINT_COLUMNS, PG_SETTLE_ALONE

__all__ = ["Settled", "settle_alone"]

#: What the statement takes of a question's row (the thread's own columns come apart).
QUESTION_FIELDS = ("id", "node", "ns", "checkpoint_id", "value", "schema", "has_default")
QUESTION_FIELDS += ("default", "timeout")


@dataclass(frozen=True, slots=True)
class Settled:
    """What the statement did."""

    run_status: RunStatus
    #: The thread's row as settled (None: it was cancelled while the run ran).
    thread: Any
    #: The question rows inserted (with their deadline and creation time).
    created: list[dict[str, Any]]


async def settle_alone(
    engine: AsyncEngine,
    run: ClaimedRun,
    saver: BufferedCheckpointer | None,
    *,
    thread_status: str,
    values: Any,
    next: list[str] | None,
    interrupts: Sequence[Any],
    events: EventLog | None,
) -> Settled | None:
    """Settle ``run`` in one statement; None (nothing written) when it stores more than one
    checkpoint (a subgraph's), which the caller's transaction handles.

    Raises:
        LeaseLostError: this worker no longer holds the run; nothing was written.
        SerializationError: a value cannot be stored; nothing was written.
    """
    checkpoints, writes = saver.flush_rows() if saver is not None else ([], [])
    if len(checkpoints) > 1:
        return None
    rows = question_rows(run, saver, interrupts)
    params: dict[str, Any] = {
        "run_id": run.id,
        "worker_id": run.worker_id,
        "thread_status": thread_status,
        "tid": run.thread_id,
        "tenant": run.tenant,
        "graph": run.graph,
        "values": values,
        "next": next,
        "questions": [{k: r[k] for k in QUESTION_FIELDS} for r in rows],
        "consume": sorted(run.answers),
        "cp_present": bool(checkpoints),
        "writes": [_write(w) for w in writes],
        "events": _event_rows(run, rows, thread_status, values, events),
        "global_url": events.webhook_url if events is not None else None,
    }
    checkpoint = checkpoints[0] if checkpoints else {}
    params.update({f"cp_{c}": checkpoint.get(c) for c in CHECKPOINT_COLUMNS})
    with wrap_db_errors():
        (row,) = await fetch_alone(engine, PG_SETTLE_ALONE, params)
        if row.run_status is None:
            raise LeaseLostError(run_id=run.id, thread_id=run.thread_id)
        if row.thread_id is None:  # cancelled while it ran: the checkpoint is kept, no run
            await fetch_alone(engine, CANCEL_RUN, {"run_id": run.id})
            return Settled(RunStatus.CANCELLED, None, [])
    times = zip(row.asked_expires or (), row.asked_created or (), strict=True)
    created = with_times(rows, dict(zip(row.asked_ids or (), times, strict=True)))
    return Settled(RunStatus(row.run_status), row, created)


def _write(row: dict[str, Any]) -> dict[str, Any]:
    """A saver's write row (``w_*``) as `PG_SETTLE_ALONE` takes it (JSON: the value base64)."""
    out = {k[2:]: v for k, v in row.items() if k != "w_value"}
    out["value"] = base64.b64encode(row["w_value"]).decode()
    return out


def _event_rows(
    run: ClaimedRun,
    questions: list[dict[str, Any]],
    thread_status: str,
    values: Any,
    events: EventLog | None,
) -> list[dict[str, Any]]:
    """The events of the outcome, as `PG_SETTLE_ALONE` takes them: a new question's marked
    with its id (recorded only if its row is inserted), the thread's recorded unless the run
    went back to the queue."""
    if events is None:
        return []
    url = events.public_url
    asked: list[NewEvent] = [interrupt_created(q, public_url=url) for q in questions]
    rows = [
        {**e, "question": q["id"]} for e, q in zip(pg_event_rows(asked), questions, strict=True)
    ]
    if thread_status == "completed":
        thread = {"thread_id": run.thread_id, "graph": run.graph, "tenant": run.tenant}
        rows += pg_event_rows([thread_completed(thread, values=values, public_url=url)])
    return rows
