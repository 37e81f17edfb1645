"""Statements and row mapping of the SQL checkpointer (`app.checkpoint.sql`).

Checkpoint rows hold ``serde`` bytes of ``[values, tasks, extra]`` (tasks as compact
``[id, name, path, arg]`` lists; rows written before this layout hold a ``{values, tasks,
extra}`` object, still read) and the metadata as tagged JSON; write rows hold ``serde`` bytes
of the value. Statements are built once per dialect and cached.

Nothing derivable is stored twice (bytes per paused thread): the engine's usual metadata
(exactly ``source`` and ``step`` equal to the row's columns and empty ``parents``) is stored
as SQL NULL (JSON ``null`` in rows written before), other metadata as it is; interrupt records
are stored without the fields still at their defaults (no schema, no deadline, no default),
without a namespace that is the asking task's own and without an id that is the engine's hash
of that namespace and the record's position; a task is stored without an id that is the
engine's hash of the checkpoint, step, node and path (a pull task as ``[name]``); ``created_at``
as ``~<microseconds after the time in the checkpoint id>`` when that gives back the same text.
Each is checked when written (anything else is stored as it is) and restored exactly on read.

A checkpoint written together with its pending writes (`inline_writes`, a run's final flush)
holds them in its ``writes`` column, ``[[task, channel, value], ...]`` (``task``: an index
into the checkpoint's tasks, or a task id), deflated with the row's data as preset dictionary
when that is shorter (a question often quotes the state): a paused thread has one row, not
two. Writes
made later go to ``checkpoint_writes``; a read merges both, inline ones first, and a later
write of the same (task, channel) replaces an inline one in its place.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from hashlib import blake2b
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.checkpoint import serde
from app.checkpoint.base import INTERRUPT, Checkpoint, CheckpointTuple, PendingWrite, TaskSpec
from app.db.driver import execute_many
from app.db.errors import wrap_db_errors
from app.db.tables import CheckpointRow, CheckpointWriteRow

__all__ = [
    "DELETE_CHECKPOINTS",
    "DELETE_WRITES",
    "checkpoint_params",
    "execute_params",
    "inline_writes",
    "pg_head_text",
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
            [_compact_task(checkpoint, t) for t in checkpoint.tasks],
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
        "created_at": _compact_created_at(checkpoint.id, checkpoint.created_at),
        "writes": None,
    }


# The engine's ids (`app.graph.ids`), recomputed to leave derivable ids out. Only a match
# is left out, so a different engine (or a changed scheme) just stores its ids.


def _task_id(checkpoint_id: str, ns: str, step: int, node: str, path: str) -> str:
    h = blake2b(
        f"{checkpoint_id}\x00{ns}\x00{step}\x00{node}\x00{path}".encode(), digest_size=16
    ).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _interrupt_id(task_ns: str, index: int) -> str:
    return blake2b(f"{task_ns}|{index}".encode(), digest_size=16).hexdigest()


def _path_key(path: Sequence[Any]) -> str | None:
    if len(path) == 2 and path[0] == "pull":
        return "pull"
    if len(path) == 2 and path[0] == "push" and type(path[1]) is int:
        return f"push:{path[1]}"
    return None


def _derived_task_id(cp: Checkpoint, name: str, path: Sequence[Any]) -> str | None:
    key = _path_key(path)
    return None if key is None else _task_id(cp.id, cp.ns, cp.step, name, key)


def _compact_task(cp: Checkpoint, t: TaskSpec) -> list[Any]:
    """``[name]`` (a pull task), ``[name, path, arg]`` (id derived), or ``[id, name, path,
    arg]``."""
    if t.id != _derived_task_id(cp, t.name, t.path):
        return [t.id, t.name, list(t.path), t.arg]
    if t.arg is None and tuple(t.path) == ("pull", t.name):
        return [t.name]
    return [t.name, list(t.path), t.arg]


def _expand_task(cp_id: str, ns: str, step: int, stored: list[Any]) -> TaskSpec:
    if len(stored) == 4:
        tid, name, path, arg = stored
        return TaskSpec(tid, name, tuple(path), arg)
    name = stored[0]
    path, arg = (["pull", name], None) if len(stored) == 1 else (stored[1], stored[2])
    key = _path_key(path)
    assert key is not None
    return TaskSpec(_task_id(cp_id, ns, step, name, key), name, tuple(path), arg)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _id_micros(checkpoint_id: str) -> int | None:
    """The time in a time-ordered checkpoint id (``app.graph.ids``), in microseconds."""
    if len(checkpoint_id) != 36:
        return None
    try:
        return int(checkpoint_id[:8] + checkpoint_id[9:13] + checkpoint_id[14:18], 16) // 1000
    except ValueError:
        return None


def _compact_created_at(checkpoint_id: str, created_at: str) -> str:
    if created_at.startswith("~"):  # escaped: read back without the first "~"
        return "~" + created_at
    base = _id_micros(checkpoint_id)
    if base is None:
        return created_at
    try:
        when = datetime.fromisoformat(created_at)
    except ValueError:
        return created_at
    if when.tzinfo is None:
        return created_at
    delta = (when - _EPOCH) // timedelta(microseconds=1) - base
    compact = f"~{delta}"
    return compact if _expand_created_at(checkpoint_id, compact) == created_at else created_at


def _expand_created_at(checkpoint_id: str, stored: str) -> str:
    if not stored.startswith("~"):
        return stored
    if stored.startswith("~~"):
        return stored[1:]
    base = _id_micros(checkpoint_id)
    if base is None:
        return stored
    return (_EPOCH + timedelta(microseconds=base + int(stored[1:]))).isoformat()


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
    """An engine write as stored: interrupt records without their default-valued fields,
    without ``ns`` when it is the asking task's own (``"<node>:<task_id>"``), and without
    ``id`` when it is the engine's id of the record's namespace and position."""
    if not _records(channel, value):
        return value
    out = []
    for i, record in enumerate(value):
        own_ns = f"{record['node']}:{task_id}"
        ns = record.get("ns", own_ns)
        derived_id = isinstance(ns, str) and record["id"] == _interrupt_id(ns, i)
        out.append(
            {
                k: v
                for k, v in record.items()
                if not (k == "ns" and v == own_ns)
                and not (k == "id" and derived_id)
                and not any(k == key and v is default for key, default in _RECORD_DEFAULTS)
            }
        )
    return out


def _is_stored_record(item: Any) -> bool:
    return type(item) is dict and type(item.get("node")) is str


def _expand_write(channel: str, value: Any, task_id: str) -> Any:
    if not (channel == INTERRUPT and type(value) is list and all(map(_is_stored_record, value))):
        return value
    for i, record in enumerate(value):
        ns = record.setdefault("ns", f"{record['node']}:{task_id}")
        if "id" not in record:
            record["id"] = _interrupt_id(ns, i)
        for key, default in _RECORD_DEFAULTS:
            record.setdefault(key, default)
    # The key order of a record as the engine makes it (id first).
    return [{"id": r.pop("id"), **r} for r in value]


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
        tasks=tuple(_expand_task(row.checkpoint_id, row.ns, row.step, t) for t in tasks),
        extra=extra,
        metadata=_expand_metadata(stored, row.step, row.source),
        created_at=_expand_created_at(row.checkpoint_id, row.created_at),
    )


#: ``channel`` of an inline write holding the task's interrupt records without their
#: ``node`` (the task's name).
_OWN_RECORDS = 0


#: First byte of a ``writes`` column deflated against the row's data (JSON starts with "[").
_DEFLATED = b"\x00"


def _deflate(text: bytes, dictionary: bytes) -> bytes:
    """``text`` as raw deflate with ``dictionary`` preset (the checkpoint's data, which the
    writes often repeat: a question quoting the state), if that is shorter.

    The window is the smallest that holds dictionary and text (so nothing is lost to it), and
    the compressor's memory follows: zlib's full 32 KiB window and level-9 tables took ~400 KiB
    per call (an mmap, page faults and a munmap) and 65 µs of CPU, for a few hundred bytes.
    Any window up to 32 KiB reads back with `_inflate`'s.
    """
    # zlib reaches back at most the window less its 262-byte lookahead.
    wbits = min(max((len(dictionary) + len(text) + 262).bit_length(), 9), 15)
    packer = zlib.compressobj(
        9, zlib.DEFLATED, -wbits, wbits - 6, zlib.Z_DEFAULT_STRATEGY, dictionary
    )
    packed = _DEFLATED + packer.compress(text) + packer.flush()
    return packed if len(packed) < len(text) else text


def _inflate(blob: bytes, dictionary: bytes) -> bytes:
    if blob[:1] != _DEFLATED:
        return blob
    unpacker = zlib.decompressobj(-15, dictionary)
    return unpacker.decompress(blob[1:]) + unpacker.flush()


def inline_writes(
    checkpoint: Checkpoint, writes: Iterable[tuple[str, str, bytes]], data: bytes
) -> bytes:
    """The ``writes`` column of ``checkpoint`` holding ``writes`` (task id, channel, the
    value's stored bytes from `write_params`), in first-write order; ``data``: the row's
    ``data`` (see `_deflate`)."""
    tasks = {t.id: i for i, t in reversed(list(enumerate(checkpoint.tasks)))}
    items = []
    for task_id, channel, blob in writes:
        task = tasks.get(task_id, task_id)
        stored: Any = channel
        if channel == INTERRUPT and type(task) is int:
            records = orjson.loads(blob)  # tags stay encoded: dumped back as they were
            name = checkpoint.tasks[task].name
            if type(records) is list and all(
                type(r) is dict and r.get("node") == name for r in records
            ):
                stored = _OWN_RECORDS
                blob = orjson.dumps([{k: v for k, v in r.items() if k != "node"} for r in records])
        items.append(b"[%b,%b,%b]" % (orjson.dumps(task), orjson.dumps(stored), blob))
    return _deflate(b"[" + b",".join(items) + b"]", data)


def _inline_from_row(checkpoint: Checkpoint, blob: Any, dictionary: Any) -> list[PendingWrite]:
    if blob is None:
        return []
    out = []
    for task, channel, value in serde.loads(_inflate(bytes(blob), bytes(dictionary))):
        task_id = checkpoint.tasks[task].id if type(task) is int else task
        if type(channel) is int and channel == _OWN_RECORDS:
            channel = INTERRUPT
            name = checkpoint.tasks[task].name
            value = [{"node": name, **r} for r in value]
        out.append(PendingWrite(task_id, channel, _expand_write(channel, value, task_id)))
    return out


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
    set_: dict[str, Any] = {
        name: cp.excluded[name]
        for name in ("parent_id", "step", "source", "data", "metadata", "created_at")
    }
    # A checkpoint put again without writes keeps those it was written with, and the data
    # they were deflated against (``writes_dict``; NULL: the row's own data).
    kept = sa.and_(cp.excluded.writes.is_(None), CHECKPOINTS.c.writes.is_not(None))
    set_["writes"] = sa.func.coalesce(cp.excluded.writes, CHECKPOINTS.c.writes)
    set_["writes_dict"] = sa.case(
        (kept, sa.func.coalesce(CHECKPOINTS.c.writes_dict, CHECKPOINTS.c.data)), else_=sa.null()
    )
    upsert_checkpoint = cp.on_conflict_do_update(
        index_elements=[CHECKPOINTS.c.thread_id, CHECKPOINTS.c.ns, CHECKPOINTS.c.checkpoint_id],
        set_=set_,
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
        CHECKPOINTS.c.writes.label("inline"),
        CHECKPOINTS.c.writes_dict,
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


@lru_cache
def pg_head_text() -> str:
    """`tuples_query("head")` as PostgreSQL text with ``:thread_id`` and ``:ns`` parameters,
    for a statement that reads the head beside what it writes (one round trip)."""
    named = postgresql.dialect(paramstyle="named")  # type: ignore[no-untyped-call]
    compiled = tuples_query("head").compile(dialect=named)
    if set(compiled.params) != {"thread_id", "ns", "param_1"} or compiled.params["param_1"] != 1:
        raise RuntimeError(f"unexpected parameters in the head query: {compiled.params}")
    text = re.sub(r":(\w+)::(\w+)", r"CAST(:\1 AS \2)", str(compiled))
    return text.replace("CAST(:param_1 AS INTEGER)", "1")


def tuples_from_rows(rows: Iterable[sa.Row[Any]]) -> list[CheckpointTuple]:
    checkpoints: list[Checkpoint] = []
    # Per checkpoint, by (task, channel): inline writes first, then the table's in idx order
    # (replacing an inline write keeps its place).
    writes: dict[str, dict[tuple[str, str], PendingWrite]] = {}
    for row in rows:
        if row.kind == 0:
            cp = _checkpoint_from_row(row)
            checkpoints.append(cp)
            inline = writes.setdefault(cp.id, {})
            dictionary = row.blob if row.writes_dict is None else row.writes_dict
            for w in _inline_from_row(cp, row.inline, dictionary):
                inline[w.task_id, w.channel] = w
        else:
            value = _expand_write(row.channel, serde.loads(row.blob), row.task_id)
            write = PendingWrite(row.task_id, row.channel, value)
            writes.setdefault(row.checkpoint_id, {})[row.task_id, row.channel] = write
    return [CheckpointTuple(cp, tuple(writes.get(cp.id, {}).values())) for cp in checkpoints]


async def execute_params(
    conn: AsyncConnection,
    checkpoint_rows: Sequence[Mapping[str, Any]],
    write_rows: Sequence[Mapping[str, Any]],
) -> None:
    """Upsert prepared rows (from `checkpoint_params` / `write_params`) on ``conn``."""
    statements = _statements(conn.dialect.name)
    with wrap_db_errors():
        await execute_many(conn, statements.upsert_checkpoint, checkpoint_rows)
        await execute_many(conn, statements.upsert_write, write_rows)
