"""The engine's side of the checkpointer port: the only module that calls a saver.

`RunStore` serves one run (durability modes, deferred saves, delivering answers); the
functions below serve ``get_state``, ``get_state_history`` and ``update_state``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.checkpoint.base import (
    INTERRUPT,
    RESUME,
    Checkpoint,
    Checkpointer,
    CheckpointTuple,
)
from app.graph.head import HeadView, TaskView
from app.graph.resume import Answer

__all__ = ["RunStore", "read_checkpoint", "read_history", "write_checkpoint"]


class RunStore:
    """Saves one run's checkpoints and writes according to its durability.

    "sync" awaits every save; "async" lets a checkpoint save overlap the next step (it is
    awaited before anything that refers to it); "exit" keeps the latest checkpoint and its
    writes in memory and saves them in `flush`, when the run ends.
    """

    def __init__(self, saver: Checkpointer, thread_id: str, ns: str, durability: str) -> None:
        self.saver = saver
        self.thread = thread_id
        self.ns = ns
        self.durability = durability
        self.put: asyncio.Future[None] | None = None
        self.unsaved: Checkpoint | None = None
        self.buffer: list[tuple[str, list[tuple[str, Any]]]] = []

    async def load(self, ns: str, at: str | None = None) -> CheckpointTuple | None:
        """Return a checkpoint of this thread with its writes (the head when ``at`` is None)."""
        return await self.saver.aget_tuple(self.thread, ns, at)

    async def save_checkpoint(self, cp: Checkpoint) -> None:
        """Save a checkpoint of the run's namespace (maybe deferred, see the class)."""
        if self.durability == "exit":
            self.unsaved, self.buffer = cp, []
            return
        if self.put is not None:
            await self.put
            self.put = None
        if self.durability == "async":
            self.put = asyncio.ensure_future(self.saver.aput(cp))
        else:
            await self.saver.aput(cp)

    async def save_writes(self, cp_id: str, task: str, writes: list[tuple[str, Any]]) -> None:
        """Save a task's writes against a checkpoint of the run's namespace."""
        if self.unsaved is not None and self.unsaved.id == cp_id:
            self.buffer.append((task, writes))
            return
        if self.put is not None:
            await self.put  # a checkpoint is stored before writes that refer to it
        await self.saver.aput_writes(self.thread, self.ns, cp_id, task, writes)

    async def flush(self) -> None:
        """Finish deferred saves; called when the run ends, however it ends."""
        if self.put is not None:
            put, self.put = self.put, None
            await put
        if self.unsaved is not None:
            cp, self.unsaved = self.unsaved, None
            await self.saver.aput(cp)
            for task, writes in self.buffer:
                await self.saver.aput_writes(self.thread, cp.ns, cp.id, task, writes)
            self.buffer = []

    async def _put(self, ns: str, cp_id: str, task: str, channel: str, value: Any) -> None:
        await self.saver.aput_writes(self.thread, ns, cp_id, task, [(channel, value)])

    async def deliver(self, head: HeadView, answers: list[Answer]) -> None:
        """Append each answer to the RESUME list of the task that asked.

        An answer to a subgraph's question goes to the asking task in the subgraph's own
        checkpoint; the question is then removed from the INTERRUPT writes of the tasks that
        propagated it (this graph's task and any level in between), so it is no longer pending.
        """
        cp = head.ct.checkpoint
        prune: dict[tuple[str, str], set[str]] = {}
        depth = len(self.ns.split("|")) if self.ns else 0
        for ans in answers:
            rec_ns = ans.record["ns"]
            if rec_ns == ans.task.ns:
                resume = [*ans.task.answers, ans.value]
                ans.task.writes[RESUME] = resume
                await self.save_writes(cp.id, ans.task.spec.id, [(RESUME, resume)])
                continue
            parts = rec_ns.split("|")
            owner_ns, owner_tid = "|".join(parts[:-1]), parts[-1].split(":", 1)[1]
            owner = await self.load(owner_ns)
            if owner is not None:
                view = next((t for t in HeadView.of(owner).tasks if t.spec.id == owner_tid), None)
                resume = [*(view.answers if view else []), ans.value]
                await self._put(owner_ns, owner.checkpoint.id, owner_tid, RESUME, resume)
            for level in range(depth, len(parts) - 1):
                key = ("|".join(parts[:level]), parts[level].split(":", 1)[1])
                prune.setdefault(key, set()).add(ans.record["id"])
        for (level_ns, tid), ids in prune.items():
            views: list[TaskView] = head.tasks
            level_id = cp.id
            if level_ns != self.ns:
                stored = await self.load(level_ns)
                if stored is None:
                    continue
                views, level_id = HeadView.of(stored).tasks, stored.checkpoint.id
            for view in views:
                if view.spec.id == tid:
                    left = [r for r in view.records if r["id"] not in ids]
                    view.writes[INTERRUPT] = left
                    await self._put(level_ns, level_id, tid, INTERRUPT, left)


async def read_checkpoint(
    saver: Checkpointer, thread_id: str, ns: str, checkpoint: str | None
) -> CheckpointTuple | None:
    """Return a checkpoint with its writes (the head when ``checkpoint`` is None)."""
    return await saver.aget_tuple(thread_id, ns, checkpoint)


async def read_history(
    saver: Checkpointer, thread_id: str, ns: str, before: str | None, limit: int | None
) -> list[CheckpointTuple]:
    """Return a thread's checkpoints, newest first."""
    return await saver.alist(thread_id, ns, before=before, limit=limit)


async def write_checkpoint(saver: Checkpointer, checkpoint: Checkpoint) -> None:
    """Save a checkpoint made outside a run (update_state)."""
    await saver.aput(checkpoint)
