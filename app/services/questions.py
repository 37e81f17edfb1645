"""The questions a run stops at: their inbox rows, and the thread a waiting request is shown.

Used by `app.services.execution` inside the run's settling transaction. A question pending from
an earlier run (re-asked because it is still unanswered) already has its row, possibly being
answered right now: only new ones are inserted, without waiting on any row lock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.checkpoint.base import INTERRUPT
from app.checkpoint.serde import to_jsonable
from app.checkpoint.sql import BufferedCheckpointer
from app.db.driver import fetch
from app.queue import ClaimedRun
from app.services.run_statements import (
    EXISTING_INTERRUPTS,
    PG_INSERT_INTERRUPT,
    PG_INSERT_NEW_INTERRUPT,
    SQLITE_INSERT_INTERRUPT,
)
from app.services.thread_rows import load_threads, thread_from_row
from app.services.views import PendingInterrupt, Thread, ThreadStatus

__all__ = ["insert_questions", "known_thread", "question_rows", "settled_thread", "with_times"]


def _interrupt_sources(
    saver: BufferedCheckpointer | None,
) -> dict[str, tuple[Mapping[str, Any], str]]:
    """Interrupt id -> (its stored InterruptRecord, the checkpoint it was asked at)."""
    sources: dict[str, tuple[Mapping[str, Any], str]] = {}
    for write in saver.buffered_writes if saver is not None else ():
        if write.channel == INTERRUPT:
            for record in write.value or ():
                sources[record["id"]] = (record, write.checkpoint_id)
    return sources


def question_rows(
    run: ClaimedRun, saver: BufferedCheckpointer | None, interrupts: Iterable[Any]
) -> list[dict[str, Any]]:
    """The inbox rows of the questions a run stops at (the thread's own columns included)."""
    sources = _interrupt_sources(saver)
    rows = []
    for item in interrupts:
        record, checkpoint_id = sources.get(item.id, ({}, None))
        rows.append(
            {
                "id": item.id,
                "thread_id": run.thread_id,
                "tenant": run.tenant,
                "graph": run.graph,
                "node": record.get("node", ""),
                "ns": record.get("ns", ""),
                "checkpoint_id": checkpoint_id or "",
                "value": to_jsonable(item.value),
                "schema": item.schema,
                "has_default": bool(item.has_default),
                "default": to_jsonable(item.default) if item.has_default else None,
                "timeout": item.timeout,
            }
        )
    return rows


def with_times(rows: Sequence[dict[str, Any]], stored: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows that were inserted (``stored``: id -> (expires_at, created_at)), with those."""
    return [
        {**r, "expires_at": stored[r["id"]][0], "created_at": stored[r["id"]][1]}
        for r in rows
        if r["id"] in stored
    ]


async def insert_questions(
    conn: AsyncConnection, rows: list[dict[str, Any]], *, sqlite: bool
) -> list[dict[str, Any]]:
    """Insert the rows of new questions; returns those inserted (with their deadline)."""
    if not rows:
        return []
    if len(rows) == 1 and not sqlite:  # the usual case: one round trip
        inserted = await fetch(conn, PG_INSERT_NEW_INTERRUPT, rows[0])
    else:
        ids = [r["id"] for r in rows]
        existing = set((await conn.execute(EXISTING_INTERRUPTS, {"ids": ids})).scalars())
        rows = [r for r in rows if r["id"] not in existing]
        if not rows:
            return []
        statement = SQLITE_INSERT_INTERRUPT if sqlite else PG_INSERT_INTERRUPT
        inserted = list(await conn.execute(statement, rows))
    return with_times(rows, {r.id: (r.expires_at, r.created_at) for r in inserted})


def known_thread(
    settled: Any, thread_status: str, asked: int, created: list[dict[str, Any]]
) -> Thread | None:
    """The thread as the settling statement left it, without a read: when the run completed
    (nothing is pending) or when every one of the ``asked`` questions it stops at was inserted
    just now. None: its pending questions must be read."""
    if thread_status == ThreadStatus.COMPLETED.value:
        return thread_from_row(settled, [])
    if thread_status == ThreadStatus.INTERRUPTED.value and len(created) == asked:
        pending = [
            PendingInterrupt(
                id=row["id"],
                value=row["value"],
                node=row["node"],
                created_at=row["created_at"],
                schema=row["schema"],
                expires_at=row["expires_at"],
            )
            for row in created
        ]
        pending.sort(key=lambda i: (i.created_at, i.id))  # as a read orders them
        return thread_from_row(settled, pending)
    return None


async def settled_thread(
    conn: AsyncConnection,
    settled: Any,
    thread_status: str,
    asked: int,
    created: list[dict[str, Any]],
) -> Thread:
    """The thread as the settling transaction leaves it, for the request waiting on the run
    (read on ``conn`` only when `known_thread` cannot tell)."""
    thread = known_thread(settled, thread_status, asked, created)
    return thread if thread is not None else (await load_threads(conn, [settled]))[0]
