"""The SQL checkpointer: the engine's port over SQLAlchemy (SQLite and PostgreSQL).

Cheap by construction: a checkpoint and its writes come back in one statement (a UNION ALL),
a put is one upsert (``INSERT .. ON CONFLICT DO UPDATE``), a task's writes one executemany;
on PostgreSQL these single statements run in autocommit, so a call costs one round trip.
Everything is serialized before the database is touched, so a `SerializationError` leaves
nothing written.

`write_batch` writes inside a caller's transaction. `BufferedCheckpointer` keeps a run's puts
in memory (reads see them) so the worker can write them in its single final transaction.

Write order: ``idx`` is ``max(idx) + 1 + i`` at first write (an upsert keeps it), so ordering
by ``idx`` gives first-write order; concurrent tasks may tie, and ties sort by ``task_id``.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.checkpoint import serde
from app.checkpoint.base import (
    Checkpoint,
    Checkpointer,
    CheckpointTuple,
    PendingWrite,
    SyncCheckpointerMixin,
)
from app.checkpoint.sql_queries import (
    DELETE_CHECKPOINTS,
    DELETE_WRITES,
    checkpoint_params,
    execute_params,
    inline_writes,
    tuples_from_rows,
    tuples_query,
    write_params,
)
from app.db.errors import wrap_db_errors

__all__ = ["BufferedCheckpointer", "SqlCheckpointer", "TaskWrite", "write_batch"]


@dataclass(frozen=True, slots=True)
class TaskWrite:
    """One pending write with the checkpoint and task it belongs to (for batch writes)."""

    thread_id: str
    ns: str
    checkpoint_id: str
    task_id: str
    channel: str
    value: Any


def _write_row(w: TaskWrite, blob: bytes, i: int) -> dict[str, Any]:
    return {
        "w_thread_id": w.thread_id,
        "w_ns": w.ns,
        "w_checkpoint_id": w.checkpoint_id,
        "w_task_id": w.task_id,
        "w_channel": w.channel,
        "w_value": blob,
        "w_i": i,  # position among this batch's writes to the checkpoint
    }


def _task_write_rows(writes: Sequence[TaskWrite]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    positions: dict[tuple[str, str, str], int] = {}
    for w in writes:
        key = (w.thread_id, w.ns, w.checkpoint_id)
        positions[key] = i = positions.get(key, -1) + 1
        rows.append(_write_row(w, serde.dumps(w.value), i))
    return rows


async def write_batch(
    conn: AsyncConnection,
    checkpoints: Sequence[Checkpoint],
    writes: Sequence[TaskWrite],
) -> None:
    """Write checkpoints and pending writes inside the caller's transaction.

    Same semantics as `SqlCheckpointer.aput` / ``aput_writes``: a checkpoint replaces one
    with its id; a write replaces the earlier one of its (task, channel), keeping its place.

    Raises:
        SerializationError: a value cannot be stored; nothing is written.
    """
    checkpoint_rows = [checkpoint_params(cp) for cp in checkpoints]
    await execute_params(conn, checkpoint_rows, _task_write_rows(writes))


class SqlCheckpointer(SyncCheckpointerMixin):
    """Checkpointer over an AsyncEngine; every call is its own transaction.

    The sync wrappers (``get_tuple``, ``put``...) run on a per-thread event loop; use them
    only with an engine that no other loop uses (asyncpg connections belong to one loop).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # PostgreSQL: single statements in autocommit skip BEGIN/COMMIT round trips.
        self._single = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )

    async def _query(self, mode: str, params: dict[str, Any]) -> list[CheckpointTuple]:
        with wrap_db_errors():
            async with self._single.connect() as conn:
                result = await conn.execute(tuples_query(mode), params)
                rows = result.all()
        return tuples_from_rows(rows)

    async def aget_tuple(
        self, thread_id: str, ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        params: dict[str, Any] = {"thread_id": thread_id, "ns": ns}
        if checkpoint_id is None:
            found = await self._query("head", params)
        else:
            found = await self._query("id", {**params, "checkpoint_id": checkpoint_id})
        return found[0] if found else None

    async def alist(
        self,
        thread_id: str,
        ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return []
        mode = "list"
        params: dict[str, Any] = {"thread_id": thread_id, "ns": ns}
        if before is not None:
            mode += "+before"
            params["before"] = before
        if limit is not None:
            mode += "+limit"
            params["limit"] = limit
        return await self._query(mode, params)

    async def aput(self, checkpoint: Checkpoint) -> None:
        row = checkpoint_params(checkpoint)
        with wrap_db_errors():
            async with self._single.begin() as conn:
                await execute_params(conn, [row], ())

    async def aput_writes(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[str, Any]],
    ) -> None:
        rows = write_params(thread_id, ns, checkpoint_id, task_id, writes)
        if not rows:
            return
        with wrap_db_errors():
            # One executemany (atomic on asyncpg even in autocommit).
            async with self._single.begin() as conn:
                await execute_params(conn, (), rows)

    async def adelete_thread(self, thread_id: str) -> None:
        with wrap_db_errors():
            async with self.engine.begin() as conn:
                await conn.execute(DELETE_WRITES, {"thread_id": thread_id})
                await conn.execute(DELETE_CHECKPOINTS, {"thread_id": thread_id})


_WriteKey = tuple[str, str, str, str, str]  # thread_id, ns, checkpoint_id, task_id, channel


class BufferedCheckpointer(SyncCheckpointerMixin):
    """Buffers puts and writes in memory; reads see them on top of ``inner``.

    The worker runs a graph with ``durability="exit"`` on this saver, then calls `flush`
    inside its one final transaction. Values are serialized when put, so an unstorable value
    fails the run at the put, not at the flush. `flush` does not clear the buffer (upserts
    make a second flush harmless); `clear` does.
    """

    def __init__(self, inner: Checkpointer) -> None:
        self.inner = inner
        self._checkpoints: dict[tuple[str, str, str], tuple[Checkpoint, dict[str, Any]]] = {}
        self._writes: dict[_WriteKey, tuple[TaskWrite, bytes]] = {}

    @property
    def buffered_checkpoints(self) -> builtins.list[Checkpoint]:
        """Checkpoints put since the last `clear`, in put order."""
        return [cp for cp, _ in self._checkpoints.values()]

    @property
    def buffered_writes(self) -> builtins.list[TaskWrite]:
        """Writes since the last `clear`, in first-write order (replaced ones in place)."""
        return [w for w, _ in self._writes.values()]

    def clear(self) -> None:
        self._checkpoints.clear()
        self._writes.clear()

    async def flush(self, conn: AsyncConnection) -> None:
        """Write the buffer inside the caller's transaction (see `write_batch`)."""
        await execute_params(conn, *self.flush_rows())

    def flush_rows(self) -> tuple[builtins.list[dict[str, Any]], builtins.list[dict[str, Any]]]:
        """The rows `flush` writes: (checkpoints, checkpoint_writes), for a caller that writes
        them in a statement of its own.

        Writes to a checkpoint put in this buffer are stored in its row (``writes``); others
        (to checkpoints stored before) in ``checkpoint_writes``.
        """
        inline: dict[tuple[str, str, str], list[tuple[str, str, bytes]]] = {}
        write_rows: list[dict[str, Any]] = []
        positions: dict[tuple[str, str, str], int] = {}
        for w, blob in self._writes.values():
            key = (w.thread_id, w.ns, w.checkpoint_id)
            if key in self._checkpoints:
                inline.setdefault(key, []).append((w.task_id, w.channel, blob))
                continue
            positions[key] = i = positions.get(key, -1) + 1
            write_rows.append(_write_row(w, blob, i))
        checkpoint_rows = [
            {**row, "writes": inline_writes(cp, inline[key], row["data"])} if key in inline else row
            for key, (cp, row) in self._checkpoints.items()
        ]
        return checkpoint_rows, write_rows

    # -- reads: the inner saver's data with the buffer on top

    def _buffered(self, thread_id: str, ns: str) -> dict[str, Checkpoint]:
        return {
            key[2]: cp
            for key, (cp, _) in self._checkpoints.items()
            if key[0] == thread_id and key[1] == ns
        }

    def _overlay(self, stored: CheckpointTuple | None, checkpoint: Checkpoint) -> CheckpointTuple:
        """``checkpoint`` with ``stored``'s writes, replaced or extended by buffered ones."""
        merged: dict[tuple[str, str], PendingWrite] = {}
        if stored is not None:
            merged = {(w.task_id, w.channel): w for w in stored.writes}
        for (thread_id, ns, cp_id, task_id, channel), (w, _) in self._writes.items():
            if (thread_id, ns, cp_id) == (checkpoint.thread_id, checkpoint.ns, checkpoint.id):
                merged[task_id, channel] = PendingWrite(task_id, channel, w.value)
        return CheckpointTuple(checkpoint, tuple(merged.values()))

    def _has_writes(self, thread_id: str, ns: str) -> bool:
        return any(key[0] == thread_id and key[1] == ns for key in self._writes)

    async def aget_tuple(
        self, thread_id: str, ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        found = await self.inner.aget_tuple(thread_id, ns, checkpoint_id)
        buffered = self._buffered(thread_id, ns)
        if not buffered and not self._has_writes(thread_id, ns):
            return found
        target = checkpoint_id
        if target is None:  # the head: the greatest id, stored or buffered
            ids = [*buffered, *([found.checkpoint.id] if found else [])]
            if not ids:
                return None
            target = max(ids)
        stored = found if found is not None and found.checkpoint.id == target else None
        checkpoint = buffered.get(target) or (stored.checkpoint if stored else None)
        return None if checkpoint is None else self._overlay(stored, checkpoint)

    async def alist(
        self,
        thread_id: str,
        ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[CheckpointTuple]:
        stored = await self.inner.alist(thread_id, ns, before=before, limit=limit)
        buffered = self._buffered(thread_id, ns)
        if not buffered and not self._has_writes(thread_id, ns):
            return stored
        by_id: dict[str, CheckpointTuple | None] = {t.checkpoint.id: t for t in stored}
        checkpoints = {t.checkpoint.id: t.checkpoint for t in stored}
        for cp_id, cp in buffered.items():
            if before is None or cp_id < before:
                checkpoints[cp_id] = cp
                by_id.setdefault(cp_id, None)
        ordered = sorted(checkpoints, reverse=True)[:limit]
        return [self._overlay(by_id[cp_id], checkpoints[cp_id]) for cp_id in ordered]

    # -- writes: into the buffer, serialized first

    async def aput(self, checkpoint: Checkpoint) -> None:
        row = checkpoint_params(checkpoint)  # fails here, before anything is buffered
        self._checkpoints[checkpoint.thread_id, checkpoint.ns, checkpoint.id] = (checkpoint, row)

    async def aput_writes(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[str, Any]],
    ) -> None:
        rows = write_params(thread_id, ns, checkpoint_id, task_id, writes)  # raises first
        blobs: dict[str, bytes] = {row["w_channel"]: row["w_value"] for row in rows}
        for channel, value in writes:
            key = (thread_id, ns, checkpoint_id, task_id, channel)
            write = TaskWrite(thread_id, ns, checkpoint_id, task_id, channel, value)
            self._writes[key] = (write, blobs[channel])

    async def adelete_thread(self, thread_id: str) -> None:
        for key in [k for k in self._checkpoints if k[0] == thread_id]:
            del self._checkpoints[key]
        for wkey in [k for k in self._writes if k[0] == thread_id]:
            del self._writes[wkey]
        await self.inner.adelete_thread(thread_id)
