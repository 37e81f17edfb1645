"""`InMemorySaver`: the checkpointer port kept in process memory (tests, scripts, the seed).

Records are stored as-is (no serialization, for speed); only the top-level values mapping of a
checkpoint is copied, so a caller that later mutates the dict it passed does not alter the
stored checkpoint. Nested values are shared: treat stored values as read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.checkpoint.base import (
    Checkpoint,
    CheckpointTuple,
    PendingWrite,
    SyncCheckpointerMixin,
)

__all__ = ["InMemorySaver", "MemorySaver"]

_Key = tuple[str, str]


class _Lane:
    """The checkpoints of one (thread, namespace), with their writes."""

    __slots__ = ("checkpoints", "head", "order", "writes")

    def __init__(self) -> None:
        self.checkpoints: dict[str, Checkpoint] = {}
        self.writes: dict[str, dict[tuple[str, str], PendingWrite]] = {}
        self.head: str | None = None
        self.order: list[str] | None = []  # ids in ascending order; None when it needs a sort

    def ids_desc(self) -> list[str]:
        if self.order is None:
            self.order = sorted(self.checkpoints)
        return self.order[::-1]


class InMemorySaver(SyncCheckpointerMixin):
    """A checkpointer that keeps every thread in a dict; lost when the process exits.

    Safe for one event loop at a time (each method completes without awaiting).
    """

    def __init__(self) -> None:
        self._lanes: dict[_Key, _Lane] = {}
        self._threads: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"<InMemorySaver threads={len(self._threads)}>"

    def _tuple(self, lane: _Lane, cid: str) -> CheckpointTuple:
        writes = lane.writes.get(cid)
        return CheckpointTuple(lane.checkpoints[cid], tuple(writes.values()) if writes else ())

    async def aget_tuple(
        self, thread_id: str, ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        """Return the checkpoint ``checkpoint_id`` (the head when None) with its writes."""
        lane = self._lanes.get((thread_id, ns))
        if lane is None:
            return None
        cid = lane.head if checkpoint_id is None else checkpoint_id
        if cid is None or cid not in lane.checkpoints:
            return None
        return self._tuple(lane, cid)

    async def alist(
        self,
        thread_id: str,
        ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
    ) -> list[CheckpointTuple]:
        """Return the thread's checkpoints in ``ns``, newest first."""
        lane = self._lanes.get((thread_id, ns))
        if lane is None:
            return []
        out: list[CheckpointTuple] = []
        for cid in lane.ids_desc():
            if before is not None and cid >= before:
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(self._tuple(lane, cid))
        return out

    async def aput(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint (a copy of its values mapping); the same id replaces it."""
        key = (checkpoint.thread_id, checkpoint.ns)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
            self._threads.setdefault(checkpoint.thread_id, set()).add(checkpoint.ns)
        cp = checkpoint
        stored = Checkpoint(
            cp.thread_id,
            cp.ns,
            cp.id,
            cp.parent_id,
            cp.step,
            cp.source,
            dict(cp.values),
            cp.tasks,
            dict(cp.extra),
            dict(cp.metadata),
            cp.created_at,
        )
        cid = cp.id
        if cid not in lane.checkpoints and lane.order is not None:
            if lane.order and cid < lane.order[-1]:
                lane.order = None
            else:
                lane.order.append(cid)
        lane.checkpoints[cid] = stored
        if lane.head is None or cid > lane.head:
            lane.head = cid

    async def aput_writes(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[str, Any]],
    ) -> None:
        """Store a task's writes; a later write of the same (task, channel) replaces it."""
        lane = self._lanes.get((thread_id, ns))
        if lane is None:
            lane = self._lanes[(thread_id, ns)] = _Lane()
            self._threads.setdefault(thread_id, set()).add(ns)
        bucket = lane.writes.get(checkpoint_id)
        if bucket is None:
            bucket = lane.writes[checkpoint_id] = {}
        for channel, value in writes:
            bucket[(task_id, channel)] = PendingWrite(task_id, channel, value)

    async def adelete_thread(self, thread_id: str) -> None:
        """Remove every checkpoint and write of a thread, in every namespace."""
        for ns in self._threads.pop(thread_id, ()):
            self._lanes.pop((thread_id, ns), None)


#: LangGraph's older name for the same saver.
MemorySaver = InMemorySaver
