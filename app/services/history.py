"""A thread's history: its checkpoints, newest first, read through the SQL checkpointer.

Checkpoints are engine records (serde-encoded); this turns them into plain JSON views: the state
values, the nodes the next step runs, and the questions and errors recorded against each one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.checkpoint.base import ERROR, INTERRUPT, CheckpointTuple
from app.checkpoint.serde import to_jsonable
from app.checkpoint.sql import SqlCheckpointer
from app.services.views import CheckpointItem, Page


def checkpoint_item(entry: CheckpointTuple) -> CheckpointItem:
    cp = entry.checkpoint
    interrupts: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for write in entry.writes:
        if write.channel == INTERRUPT:
            for record in write.value or ():
                interrupts.append(
                    {
                        "id": record.get("id"),
                        "node": record.get("node"),
                        "value": to_jsonable(record.get("value")),
                    }
                )
        elif write.channel == ERROR:
            errors.append({"task_id": write.task_id, **dict(to_jsonable(write.value) or {})})
    return CheckpointItem(
        checkpoint_id=cp.id,
        parent_id=cp.parent_id,
        step=cp.step,
        source=cp.source,
        created_at=cp.created_at,
        values=to_jsonable(dict(cp.values)),
        next=[task.name for task in cp.tasks],
        metadata=dict(to_jsonable(dict(cp.metadata)) or {}),
        interrupts=interrupts,
        errors=errors,
    )


async def load_history(
    engine: AsyncEngine, thread_id: str, *, limit: int, before: str | None
) -> Page[CheckpointItem]:
    """One page of the root namespace's checkpoints; the next cursor is the last id shown."""
    saver = SqlCheckpointer(engine)
    entries = await saver.alist(thread_id, "", before=before or None, limit=limit + 1)
    items = [checkpoint_item(e) for e in entries[:limit]]
    next_cursor = items[-1].checkpoint_id if len(entries) > limit else None
    return Page(items, next_cursor)
