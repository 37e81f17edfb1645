"""The saver a run executes against: reads its head from the claim, buffers every write.

A run's only database reads of checkpoints would be its head (the engine reads it first).
The worker reads that head inside the claim's transaction (`prefetch_head`), so executing a
run costs no commit besides the claim and the final one. Writes go to a
`BufferedCheckpointer` and reach the database in the run's final transaction.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.checkpoint.base import Checkpoint, Checkpointer, CheckpointTuple
from app.checkpoint.sql import BufferedCheckpointer, SqlCheckpointer
from app.checkpoint.sql_queries import tuples_from_rows, tuples_query
from app.db.driver import fetch
from app.db.errors import UNAVAILABLE_ERRORS

__all__ = ["HeadCachedSaver", "PrefetchedHead", "prefetch_head", "run_saver"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PrefetchedHead:
    """A thread's root head as of the claim (None: the thread has no checkpoint at all)."""

    thread_id: str
    head: CheckpointTuple | None


async def prefetch_head(conn: AsyncConnection, thread_id: str) -> PrefetchedHead | None:
    """Read ``thread_id``'s root head on the claim's connection.

    Never fails the claim over stored data it cannot decode: it returns None, and the run
    reads (and fails on) the head itself, so the run gets a stored error, not a retry loop.
    """
    try:
        rows = await fetch(conn, tuples_query("head"), {"thread_id": thread_id, "ns": ""})
        tuples = tuples_from_rows(rows)
    except UNAVAILABLE_ERRORS:
        raise
    except Exception:
        logger.warning("thread %s: head not prefetched", thread_id, exc_info=True)
        return None
    return PrefetchedHead(thread_id, tuples[0] if tuples else None)


class HeadCachedSaver:
    """``inner`` with one thread's root head answered from memory.

    Valid for one run: nothing writes the thread's checkpoints while its run holds the
    lease (the run's own writes are buffered above this saver). A thread without a head has
    no checkpoints in any namespace, so all its reads are answered empty.
    """

    def __init__(self, inner: Checkpointer, prefetched: PrefetchedHead) -> None:
        self.inner = inner
        self.prefetched = prefetched

    def _mine(self, thread_id: str) -> bool:
        return thread_id == self.prefetched.thread_id

    async def aget_tuple(
        self, thread_id: str, ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        head = self.prefetched.head
        if self._mine(thread_id):
            if head is None:
                return None
            if ns == "" and checkpoint_id in (None, head.checkpoint.id):
                return head
        return await self.inner.aget_tuple(thread_id, ns, checkpoint_id)

    async def alist(
        self,
        thread_id: str,
        ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[CheckpointTuple]:
        if self._mine(thread_id) and self.prefetched.head is None:
            return []
        return await self.inner.alist(thread_id, ns, before=before, limit=limit)

    async def aput(self, checkpoint: Checkpoint) -> None:
        await self.inner.aput(checkpoint)

    async def aput_writes(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[str, Any]],
    ) -> None:
        await self.inner.aput_writes(thread_id, ns, checkpoint_id, task_id, writes)

    async def adelete_thread(self, thread_id: str) -> None:
        await self.inner.adelete_thread(thread_id)


def run_saver(sql_saver: SqlCheckpointer, prefetched: Any) -> BufferedCheckpointer:
    """The saver for one run: buffered writes over ``sql_saver`` (the head from the claim).

    ``sql_saver`` is built once per engine by the caller: building one costs more than a
    small run's whole graph execution.
    """
    inner: Checkpointer = sql_saver
    if isinstance(prefetched, PrefetchedHead):
        inner = HeadCachedSaver(inner, prefetched)
    return BufferedCheckpointer(inner)
