"""Statements and row mapping of the SQL checkpointer (`app.checkpoint.sql`).

Checkpoint rows hold ``serde`` bytes of ``[values, tasks, extra]`` (tasks as compact
``[id, name, path, arg]`` lists; rows written before this layout hold a ``{values, tasks,
extra}`` object, still read) and the metadata as tagged JSON; write rows hold ``serde`` bytes
of the value. Statements are built once per dialect and cached.

Nothing derivable is stored twice (bytes per paused thread): the engine's usual metadata
(exactly ``source`` and ``step`` equal to the row's columns and empty ``parents``) is stored
as JSON ``null``, other metadata as it is; interrupt records are stored without the fields still
at their defaults (no schema, no deadline, no default) and without a namespace that is the
asking task's own. All are restored exactly on read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.checkpoint import serde
from app.checkpoint.base import INTERRUPT, Checkpoint, CheckpointTuple, PendingWrite, TaskSpec
from app.db.errors import wrap_db_errors
from app.db.tables import CheckpointRow, CheckpointWriteRow

__all__ = [
    "DELETE_CHECKPOINTS",
    "DELETE_WRITES",
    "checkpoint_params",
    "execute_params",
    "tuples_from_rows",
    "tuples_query",
    "write_params",
]

CHECKPOINTS: sa.Table = CheckpointRow.__table__  # type: ignore[assignment]
WRITES: sa.Table = CheckpointWriteRow.__table__  # type: ignore[assignment]


# ---------------------------------------------------------------- serialization


def checkpoint_params(checkpoint: Checkpoint) -> dict[str, Any]:
    """The row parameters of a checkpoint.

    Raises:
        SerializationError: a value cannot be stored.
    """
    data = serde.dumps(
        [
            dict(checkpoint.values),
            [[t.id, t.name, list(t.path), t.arg] for t in checkpoint.tasks],
            dict(checkpoint.extra),
        ]
    )
    metadata = _compact_metadata(checkpoint.metadata, checkpoint.step, checkpoint.source)
    return {
        "thread_id": checkpoint.thread_id,
        "ns": checkpoint.ns,
        "checkpoint_id": checkpoint.id,
        "parent_id": checkpoint.parent_id,
        "step": checkpoint.step,
        "source": checkpoint.source,
        "data": data,
        "metadata": None if metadata is None else serde.encode(metadata),
        "created_at": checkpoint.created_at,
    }


def _compact_metadata(metadata: Mapping[str, Any], step: int, source: str) -> Any:
    """None (JSON null) for the engine's usual metadata, which the row's columns already say;
    anything else is stored as it is."""
    usual = (
        len(metadata) == 3
        and type(metadata.get("step")) is int
        and metadata["step"] == step
        and metadata.get("source") == source
        and metadata.get("parents") == {}
    )
    return None if usual else dict(metadata)


def _expand_metadata(stored: Any, step: int, source: str) -> dict[str, Any]:
    if stored is None:
        return {"source": source, "step": step, "parents": {}}
    return dict(stored)


#: Interrupt record fields and the defaults that are left out when stored.
_RECORD_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("schema", None),
    ("timeout", None),
    ("has_default", False),
    ("default", None),
)


def _is_record(item: Any) -> bool:
    return type(item) is dict and "id" in item and type(item.get("node")) is str


def _records(channel: str, value: Any) -> bool:
    return channel == INTERRUPT and type(value) is list and all(map(_is_record, value))


def _compact_write(channel: str, value: Any, task_id: str) -> Any:
    """An engine write as stored: interrupt records without their default-valued fields, and
    without ``ns`` when it is the asking task's own (``"<node>:<task_id>"``)."""
    if not _records(channel, value):
        return value
    out = []
    for record in value:
        own_ns = f"{record['node']}:{task_id}"
        out.append(
            {
                k: v
                for k, v in record.items()
                if not (k == "ns" and v == own_ns)
                and not any(k == key and v is default for key, default in _RECORD_DEFAULTS)
            }
        )
    return out


def _expand_write(channel: str, value: Any, task_id: str) -> Any:
    if not _records(channel, value):
        return value
    for record in value:
        record.setdefault("ns", f"{record['node']}:{task_id}")
        for key, default in _RECORD_DEFAULTS:
            record.setdefault(key, default)
    return value


def write_params(
    thread_id: str,
    ns: str,
    checkpoint_id: str,
    task_id: str,
    writes: Iterable[tuple[str, Any]],
) -> list[dict[str, Any]]:
    """The row parameters of a task's writes; a channel written twice keeps the last value.

    Raises:
        SerializationError: a value cannot be stored.
    """
    latest: dict[str, Any] = {}
    for channel, value in writes:
        latest[channel] = serde.dumps(_compact_write(channel, value, task_id))
    return [
        {
            "w_thread_id": thread_id,
            "w_ns": ns,
            "w_checkpoint_id": checkpoint_id,
            "w_task_id": task_id,
            "w_channel": channel,
            "w_value": blob,
            "w_i": i,
        }
        for i, (channel, blob) in enumerate(latest.items())
    ]


def _checkpoint_from_row(row: sa.Row[Any]) -> Checkpoint:
    data = serde.loads(row.blob)
    if type(data) is dict:  # the layout before the list one
        data = [data["values"], data["tasks"], data["extra"]]
    values, tasks, extra = data
    stored = serde.decode(row.metadata) if row.metadata is not None else None
    return Checkpoint(
        thread_id=row.thread_id,
        ns=row.ns,
        id=row.checkpoint_id,
        parent_id=row.parent_id,
        step=row.step,
        source=row.source,
        values=values,
        tasks=tuple(TaskSpec(tid, name, tuple(path), arg) for tid, name, path, arg in tasks),
        extra=extra,
        metadata=_expand_metadata(stored, row.step, row.source),
        created_at=row.created_at,
    )


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class _Statements:
    upsert_checkpoint: sa.Insert
    upsert_write: sa.Insert


@lru_cache
def _statements(dialect: str) -> _Statements:
    """Upserts for one dialect (built once; SQLAlchemy caches their compiled form)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    cp = insert(CHECKPOINTS)
    upsert_checkpoint = cp.on_conflict_do_update(
        index_elements=[CHECKPOINTS.c.thread_id, CHECKPOINTS.c.ns, CHECKPOINTS.c.checkpoint_id],
        set_={
            name: cp.excluded[name]
            for name in ("parent_id", "step", "source", "data", "metadata", "created_at")
        },
    )
    key = (
        WRITES.c.thread_id == sa.bindparam("w_thread_id"),
        WRITES.c.ns == sa.bindparam("w_ns"),
        WRITES.c.checkpoint_id == sa.bindparam("w_checkpoint_id"),
    )
    # First-write order: the next index after this checkpoint's writes, plus the position.
    next_idx = sa.select(sa.func.coalesce(sa.func.max(WRITES.c.idx) + 1, 0)).where(*key)
    w = insert(WRITES).values(
        thread_id=sa.bindparam("w_thread_id"),
        ns=sa.bindparam("w_ns"),
        checkpoint_id=sa.bindparam("w_checkpoint_id"),
        task_id=sa.bindparam("w_task_id"),
        channel=sa.bindparam("w_channel"),
        idx=next_idx.scalar_subquery() + sa.bindparam("w_i", type_=sa.Integer),
        value=sa.bindparam("w_value", type_=sa.LargeBinary),
    )
    # Replacing a (task, channel) write keeps its first-write index.
    upsert_write = w.on_conflict_do_update(
        index_elements=[
            WRITES.c.thread_id,
            WRITES.c.ns,
            WRITES.c.checkpoint_id,
            WRITES.c.task_id,
            WRITES.c.channel,
        ],
        set_={"value": w.excluded.value},
    )
    return _Statements(upsert_checkpoint, upsert_write)


def _ids_head() -> sa.Select[tuple[str]]:
    return (
        sa.select(CHECKPOINTS.c.checkpoint_id)
        .where(
            CHECKPOINTS.c.thread_id == sa.bindparam("thread_id"),
            CHECKPOINTS.c.ns == sa.bindparam("ns"),
        )
        .order_by(CHECKPOINTS.c.checkpoint_id.desc())
    )


@lru_cache
def tuples_query(mode: str) -> sa.Select[Any]:
    """Checkpoints and their writes in one statement.

    ``mode``: "id" (one checkpoint), "head", or "list" with optional "+before" / "+limit".
    Rows: kind 0 (checkpoints, newest first), then kind 1 (writes in first-write order).
    """
    if mode == "id":
        ids: Any = sa.bindparam("checkpoint_id")
    else:
        select_ids = _ids_head()
        if "+before" in mode:
            select_ids = select_ids.where(CHECKPOINTS.c.checkpoint_id < sa.bindparam("before"))
        if mode == "head":
            select_ids = select_ids.limit(1)
        elif "+limit" in mode:
            select_ids = select_ids.limit(sa.bindparam("limit", type_=sa.Integer))
        ids = select_ids

    def matches(column: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
        return column == ids if mode == "id" else column.in_(ids)

    null = sa.null
    checkpoints = sa.select(
        sa.literal_column("0").label("kind"),
        CHECKPOINTS.c.thread_id,
        CHECKPOINTS.c.ns,
        CHECKPOINTS.c.checkpoint_id,
        CHECKPOINTS.c.parent_id,
        CHECKPOINTS.c.step,
        CHECKPOINTS.c.source,
        CHECKPOINTS.c.data.label("blob"),
        CHECKPOINTS.c.metadata,
        CHECKPOINTS.c.created_at,
        null().label("task_id"),
        null().label("channel"),
        sa.literal_column("0").label("idx"),
    ).where(
        CHECKPOINTS.c.thread_id == sa.bindparam("thread_id"),
        CHECKPOINTS.c.ns == sa.bindparam("ns"),
        matches(CHECKPOINTS.c.checkpoint_id),
    )
    writes = sa.select(
        sa.literal_column("1"),
        WRITES.c.thread_id,
        WRITES.c.ns,
        WRITES.c.checkpoint_id,
        null(),
        null(),
        null(),
        WRITES.c.value,
        null(),
        null(),
        WRITES.c.task_id,
        WRITES.c.channel,
        WRITES.c.idx,
    ).where(
        WRITES.c.thread_id == sa.bindparam("thread_id"),
        WRITES.c.ns == sa.bindparam("ns"),
        matches(WRITES.c.checkpoint_id),
    )
    both = sa.union_all(checkpoints, writes).subquery("t")
    return sa.select(both).order_by(
        both.c.kind, both.c.checkpoint_id.desc(), both.c.idx, both.c.task_id
    )


DELETE_WRITES = sa.delete(WRITES).where(WRITES.c.thread_id == sa.bindparam("thread_id"))
DELETE_CHECKPOINTS = sa.delete(CHECKPOINTS).where(
    CHECKPOINTS.c.thread_id == sa.bindparam("thread_id")
)


def tuples_from_rows(rows: Iterable[sa.Row[Any]]) -> list[CheckpointTuple]:
    checkpoints: list[Checkpoint] = []
    writes: dict[str, list[PendingWrite]] = {}
    for row in rows:
        if row.kind == 0:
            checkpoints.append(_checkpoint_from_row(row))
        else:
            writes.setdefault(row.checkpoint_id, []).append(
                PendingWrite(
                    row.task_id,
                    row.channel,
                    _expand_write(row.channel, serde.loads(row.blob), row.task_id),
                )
            )
    return [CheckpointTuple(cp, tuple(writes.get(cp.id, ()))) for cp in checkpoints]


async def execute_params(
    conn: AsyncConnection,
    checkpoint_rows: Sequence[Mapping[str, Any]],
    write_rows: Sequence[Mapping[str, Any]],
) -> None:
    """Upsert prepared rows (from `checkpoint_params` / `write_params`) on ``conn``."""
    statements = _statements(conn.dialect.name)
    with wrap_db_errors():
        if checkpoint_rows:
            await conn.execute(statements.upsert_checkpoint, list(checkpoint_rows))
        if write_rows:
            await conn.execute(statements.upsert_write, list(write_rows))
