"""What the SQL saver stores is smaller than what it is given, and reads back exactly the same."""

from __future__ import annotations

import dataclasses
import json
import zlib
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.checkpoint.base import INTERRUPT, Checkpoint, TaskSpec
from app.checkpoint.sql import BufferedCheckpointer, SqlCheckpointer
from app.graph.ids import checkpoint_id, interrupt_id, task_id
from app.graph.runner import now_iso


def _engine_checkpoint(thread_id: str = "t1") -> Checkpoint:
    """A checkpoint with the engine's own ids, as a run pausing at ``ask`` writes it."""
    cid = checkpoint_id()
    pull = task_id(cid, "", 0, "ask", "pull")
    push = task_id(cid, "", 0, "fan", "push:0")
    return Checkpoint(
        thread_id=thread_id,
        ns="",
        id=cid,
        parent_id=None,
        step=0,
        source="loop",
        values={"request": "refund"},
        tasks=(
            TaskSpec(pull, "ask", ("pull", "ask")),
            TaskSpec(push, "fan", ("push", 0), {"item": 1}),
            TaskSpec("custom-id", "odd", ("pull", "odd")),
        ),
        extra={"writers": ["__start__"]},
        metadata={"source": "loop", "step": 0, "parents": {}},
        created_at=now_iso(),
    )


def _records(task: str) -> list[dict[str, Any]]:
    ns = f"ask:{task}"
    return [
        {
            "id": interrupt_id(ns, i),
            "value": {"question": f"q{i}"},
            "node": "ask",
            "ns": ns,
            "schema": None,
            "timeout": None,
            "has_default": False,
            "default": None,
        }
        for i in range(2)
    ] + [
        {
            "id": "f" * 32,
            "value": 1,
            "node": "ask",
            "ns": "elsewhere",
            "schema": {"type": "integer"},
            "timeout": 5.0,
            "has_default": True,
            "default": 0,
        }
    ]


def _inflated(row: Any) -> bytes:
    """A writes column as JSON (deflated against the row's data, when that was shorter)."""
    blob = bytes(row["writes"])
    if blob[:1] == b"[":
        return blob
    assert blob[:1] == b"\x00"
    unpacker = zlib.decompressobj(-15, bytes(row["writes_dict"] or row["data"]))
    return unpacker.decompress(blob[1:]) + unpacker.flush()


async def _row(engine: AsyncEngine, table: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.text(f"SELECT * FROM {table}"))).mappings().all()


async def test_a_flushed_checkpoint_holds_its_writes_and_reads_back_the_same(
    db_engine: AsyncEngine,
) -> None:
    stored = SqlCheckpointer(db_engine)
    buffered = BufferedCheckpointer(stored)
    cp = _engine_checkpoint()
    ask = cp.tasks[0].id
    await buffered.aput(cp)
    await buffered.aput_writes("t1", "", cp.id, ask, [(INTERRUPT, _records(ask)), ("x", 1)])
    await buffered.aput_writes("t1", "", cp.id, "other-task", [("y", (1, 2))])
    expected = await buffered.aget_tuple("t1")
    async with db_engine.begin() as conn:
        await buffered.flush(conn)

    assert await _row(db_engine, "checkpoint_writes") == []
    (row,) = await _row(db_engine, "checkpoints")
    assert row["metadata"] is None  # SQL NULL: the usual metadata
    assert row["created_at"].startswith("~")
    data = bytes(row["data"])
    assert cp.tasks[0].id.encode() not in data and cp.tasks[1].id.encode() not in data
    assert b"custom-id" in data
    inline = json.loads(_inflated(row))
    # The task as its index; its own interrupt records (channel 0) without node, ns and ids
    # that derive from it, nor fields at their defaults.
    assert [w[:2] for w in inline] == [[0, 0], [0, "x"], ["other-task", "y"]]
    assert [sorted(r) for r in inline[0][2]] == [
        ["value"],
        ["value"],
        sorted(set(_records(ask)[2]) - {"node"}),
    ]

    found = await stored.aget_tuple("t1")
    assert found == expected
    assert found is not None and found.checkpoint == cp
    assert [(w.task_id, w.channel) for w in found.writes] == [
        (ask, INTERRUPT),
        (ask, "x"),
        ("other-task", "y"),
    ]
    assert found.writes[0].value == _records(ask)


async def test_later_writes_replace_inline_ones_in_place(db_engine: AsyncEngine) -> None:
    stored = SqlCheckpointer(db_engine)
    buffered = BufferedCheckpointer(stored)
    cp = _engine_checkpoint()
    ask = cp.tasks[0].id
    await buffered.aput(cp)
    await buffered.aput_writes("t1", "", cp.id, ask, [("a", 1), ("b", 2)])
    async with db_engine.begin() as conn:
        await buffered.flush(conn)
    await stored.aput_writes("t1", "", cp.id, ask, [("c", 3), ("a", 10)])
    await stored.aput(cp)  # put again without writes: keeps the inline ones
    found = await stored.aget_tuple("t1")
    assert found is not None
    assert [(w.channel, w.value) for w in found.writes] == [("a", 10), ("b", 2), ("c", 3)]
    (listed,) = await stored.alist("t1")
    assert listed == found


@pytest.mark.parametrize("created_at", ["", "not a time", "2025-01-01T00:00:00", "~5", "~~x"])
async def test_created_at_is_kept_when_it_cannot_be_compacted(
    db_engine: AsyncEngine, created_at: str
) -> None:
    stored = SqlCheckpointer(db_engine)
    cp = _engine_checkpoint()
    await stored.aput(dataclasses.replace(cp, created_at=created_at))
    found = await stored.aget_tuple("t1")
    assert found is not None and found.checkpoint.created_at == created_at


async def test_rows_of_the_earlier_layout_still_read(db_engine: AsyncEngine) -> None:
    cid = "0001"
    data = json.dumps(
        [{"v": 1}, [["task-1", "ask", ["pull", "ask"], None]], {"writers": []}]
    ).encode()
    record = {"id": "i" * 32, "value": 1, "node": "ask"}
    async with db_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO checkpoints (thread_id, ns, checkpoint_id, step, source, data, "
                "metadata, created_at) VALUES ('t1', '', :cid, 1, 'loop', :data, 'null', :at)"
            ),
            {"cid": cid, "data": data, "at": "2025-01-01T00:00:00+00:00"},
        )
        await conn.execute(
            sa.text("INSERT INTO checkpoint_writes VALUES ('t1', '', :cid, 'task-1', :ch, 0, :v)"),
            {"cid": cid, "ch": INTERRUPT, "v": json.dumps([record]).encode()},
        )
    found = await SqlCheckpointer(db_engine).aget_tuple("t1")
    assert found is not None
    assert found.checkpoint.tasks == (TaskSpec("task-1", "ask", ("pull", "ask")),)
    assert found.checkpoint.metadata == {"source": "loop", "step": 1, "parents": {}}
    assert found.checkpoint.created_at == "2025-01-01T00:00:00+00:00"
    (write,) = found.writes
    assert write.value == [
        {
            **record,
            "ns": "ask:task-1",
            "schema": None,
            "timeout": None,
            "has_default": False,
            "default": None,
        }
    ]


async def test_writes_deflated_against_the_data_survive_a_put_with_other_data(
    db_engine: AsyncEngine,
) -> None:
    stored = SqlCheckpointer(db_engine)
    buffered = BufferedCheckpointer(stored)
    cp = _engine_checkpoint()
    ask = cp.tasks[0].id
    quoting = [{**_records(ask)[0], "value": {"quote": cp.values["request"] * 5}}]
    await buffered.aput(cp)
    await buffered.aput_writes("t1", "", cp.id, ask, [(INTERRUPT, quoting)])
    async with db_engine.begin() as conn:
        await buffered.flush(conn)
    (row,) = await _row(db_engine, "checkpoints")
    assert bytes(row["writes"])[:1] == b"\x00"  # deflated: it repeats the values
    assert len(row["writes"]) < len(_inflated(row))

    other = dataclasses.replace(cp, values={"request": "something else entirely"})
    await stored.aput(other)
    await stored.aput(other)  # twice: still the data the writes were deflated against
    found = await stored.aget_tuple("t1")
    assert found is not None and found.checkpoint == other
    assert [w.value for w in found.writes] == [quoting]

    async with db_engine.begin() as conn:  # a flush with writes deflates them anew
        await buffered.flush(conn)
    (row,) = await _row(db_engine, "checkpoints")
    assert row["writes_dict"] is None
    found = await stored.aget_tuple("t1")
    assert found is not None and found.checkpoint == cp and found.writes[0].value == quoting


@pytest.mark.parametrize("size", [10, 300, 700, 5_000, 40_000])
def test_writes_deflate_as_small_as_with_zlibs_full_window(size: int) -> None:
    """The window is sized to dictionary and text: the same bytes as zlib's full window, and
    writes deflated with the full window (rows stored before) still inflate."""
    from app.checkpoint.sql_queries import _deflate, _inflate

    data = json.dumps({"values": {"question": "Send the refund? " * (size // 17 + 1)}}).encode()
    data = data[:size]
    for text in (data[: size // 3] + b"and more", data[-60:] + data[:60]):
        full = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, data)
        before = b"\x00" + full.compress(text) + full.flush()
        packed = _deflate(text, data)
        assert packed == text or len(packed) <= len(before)
        assert _inflate(packed, data) == text
        assert _inflate(before, data) == text
