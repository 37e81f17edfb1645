"""Checkpointer conformance: the behaviour every saver of the port must have.

Use it by subclassing and providing a ``saver`` fixture that returns a fresh, empty saver::

    class TestMySaver(SerializingSaverConformance):  # SaverConformance for a saver of objects

        @pytest.fixture
        def saver(self, ...) -> Checkpointer: ...

The invariants are those of ``app/checkpoint/base.py``: ids sort in creation order and the
head is the greatest; a put of an existing id replaces it; writes replace per (task, channel)
and keep first-write order; values round-trip equal; a SerializationError writes nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from app.checkpoint.base import (
    ERROR,
    INTERRUPT,
    NULL_TASK_ID,
    RESUME,
    ROUTE,
    Checkpoint,
    Checkpointer,
    CheckpointTuple,
    InterruptRecord,
    PendingWrite,
    TaskSpec,
)
from app.checkpoint.serde import SerializationError

T1 = "a" * 32
T2 = "b" * 32


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float
    tags: tuple[str, ...] = ()


class Ticket(pydantic.BaseModel):
    title: str
    due: datetime
    points: list[Point] = []


class Color(enum.Enum):
    RED = "red"


class Opaque:
    """Not storable: no tag exists for it."""


def make_checkpoint(
    cid: str,
    *,
    thread_id: str = "thread-1",
    ns: str = "",
    parent_id: str | None = None,
    step: int = 0,
    values: dict[str, Any] | None = None,
    **kw: Any,
) -> Checkpoint:
    return Checkpoint(
        thread_id=thread_id,
        ns=ns,
        id=cid,
        parent_id=parent_id,
        step=step,
        source=kw.pop("source", "loop"),
        values={"count": step} if values is None else values,
        tasks=kw.pop("tasks", (TaskSpec(id=T1, name="node", path=("pull", "node")),)),
        extra=kw.pop("extra", {}),
        metadata=kw.pop("metadata", {"step": step}),
        created_at=kw.pop("created_at", f"2025-01-01T00:00:{step % 60:02d}+00:00"),
    )


def ids(tuples: list[CheckpointTuple]) -> list[str]:
    return [t.checkpoint.id for t in tuples]


def writes_of(found: CheckpointTuple | None) -> list[tuple[str, str, Any]]:
    assert found is not None
    return [(w.task_id, w.channel, w.value) for w in found.writes]


RICH_VALUES: dict[str, Any] = {
    "text": "héllo ✓",
    "int": 2**70,
    "float": 1.5,
    "none": None,
    "bool": True,
    "list": [1, "two", [3.0]],
    "tuple": (1, ("nested", 2)),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "bytes": b"\x00\xffbinary",
    "datetime": datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=UTC),
    "naive": datetime(2025, 3, 4, 5, 6, 7),
    "offset": datetime(2025, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5))),
    "date": date(2025, 3, 4),
    "delta": timedelta(days=1, seconds=2, microseconds=3),
    "uuid": uuid.UUID(int=12345),
    "decimal": Decimal("1.10"),
    "enum": Color.RED,
    "dataclass": Point(1, 2.5, ("a", "b")),
    "pydantic": Ticket(title="t", due=datetime(2025, 1, 1, tzinfo=UTC), points=[Point(0, 0)]),
    "int_keys": {1: "one", (2, 3): "pair"},
    "tag_lookalike": {"__t": "tuple", "v": [1]},
}


class SaverConformance:
    """Mix into a ``Test...`` class that provides a ``saver`` fixture."""

    # ---------------------------------------------------------------- checkpoints

    async def test_unknown_thread_is_none(self, saver: Checkpointer) -> None:
        assert await saver.aget_tuple("nope") is None
        assert await saver.aget_tuple("nope", "", "0001") is None
        assert await saver.alist("nope") == []

    async def test_put_then_get_round_trips(self, saver: Checkpointer) -> None:
        cp = make_checkpoint(
            "0001",
            source="input",
            step=-1,
            values={"a": 1, "b": ["x"]},
            tasks=(
                TaskSpec(id=T1, name="a", path=("pull", "a")),
                TaskSpec(id=T2, name="b", path=("push", 0), arg={"item": 1}),
            ),
            extra={"barriers": {"join": ["a"]}},
            metadata={"source": "input", "step": -1, "run": "r1"},
        )
        await saver.aput(cp)
        found = await saver.aget_tuple("thread-1")
        assert found == CheckpointTuple(cp, ())
        assert await saver.aget_tuple("thread-1", "", "0001") == CheckpointTuple(cp, ())

    async def test_head_is_the_greatest_id(self, saver: Checkpointer) -> None:
        for cid in ("0002", "0003", "0001"):
            await saver.aput(make_checkpoint(cid))
        found = await saver.aget_tuple("thread-1")
        assert found is not None and found.checkpoint.id == "0003"

    async def test_get_by_id(self, saver: Checkpointer) -> None:
        for step, cid in enumerate(("0001", "0002", "0003")):
            await saver.aput(make_checkpoint(cid, step=step))
        found = await saver.aget_tuple("thread-1", "", "0002")
        assert found is not None and found.checkpoint == make_checkpoint("0002", step=1)
        assert await saver.aget_tuple("thread-1", "", "0009") is None

    async def test_put_same_id_replaces(self, saver: Checkpointer) -> None:
        await saver.aput(make_checkpoint("0001", values={"v": 1}))
        replacement = make_checkpoint("0001", values={"v": 2}, metadata={"again": True})
        await saver.aput(replacement)
        found = await saver.aget_tuple("thread-1")
        assert found is not None and found.checkpoint == replacement
        assert ids(await saver.alist("thread-1")) == ["0001"]

    async def test_list_newest_first_with_before_and_limit(self, saver: Checkpointer) -> None:
        for step, cid in enumerate(("0001", "0002", "0003", "0004")):
            await saver.aput(make_checkpoint(cid, step=step))
        assert ids(await saver.alist("thread-1")) == ["0004", "0003", "0002", "0001"]
        assert ids(await saver.alist("thread-1", limit=2)) == ["0004", "0003"]
        assert ids(await saver.alist("thread-1", before="0003")) == ["0002", "0001"]
        assert ids(await saver.alist("thread-1", before="0004", limit=1)) == ["0003"]
        assert ids(await saver.alist("thread-1", limit=10)) == ["0004", "0003", "0002", "0001"]
        assert await saver.alist("thread-1", before="0001") == []

    async def test_list_returns_full_checkpoints_with_writes(self, saver: Checkpointer) -> None:
        first, second = make_checkpoint("0001"), make_checkpoint("0002", step=1)
        await saver.aput(first)
        await saver.aput(second)
        await saver.aput_writes("thread-1", "", "0001", T1, [("count", 1), (ROUTE, [])])
        listed = await saver.alist("thread-1")
        assert listed == [
            CheckpointTuple(second, ()),
            CheckpointTuple(first, (PendingWrite(T1, "count", 1), PendingWrite(T1, ROUTE, []))),
        ]

    async def test_threads_are_isolated(self, saver: Checkpointer) -> None:
        await saver.aput(make_checkpoint("0001", thread_id="t-a"))
        await saver.aput(make_checkpoint("0002", thread_id="t-b"))
        await saver.aput_writes("t-a", "", "0001", T1, [("x", 1)])
        found = await saver.aget_tuple("t-a")
        assert found is not None and found.checkpoint.id == "0001"
        assert writes_of(found) == [(T1, "x", 1)]
        assert ids(await saver.alist("t-b")) == ["0002"]
        assert await saver.aget_tuple("t-b", "", "0001") is None

    async def test_namespaces_are_isolated(self, saver: Checkpointer) -> None:
        sub = f"child:{T1}"
        await saver.aput(make_checkpoint("0001"))
        await saver.aput(make_checkpoint("0002", ns=sub, values={"inner": 1}))
        await saver.aput_writes("thread-1", sub, "0002", T2, [("inner", 2)])
        root = await saver.aget_tuple("thread-1")
        assert root is not None and root.checkpoint.id == "0001" and root.writes == ()
        child = await saver.aget_tuple("thread-1", sub)
        assert child is not None and child.checkpoint.values == {"inner": 1}
        assert writes_of(child) == [(T2, "inner", 2)]
        assert ids(await saver.alist("thread-1")) == ["0001"]
        assert ids(await saver.alist("thread-1", sub)) == ["0002"]
        assert await saver.aget_tuple("thread-1", "", "0002") is None

    # ---------------------------------------------------------------- writes

    async def test_writes_are_visible_with_their_checkpoint(self, saver: Checkpointer) -> None:
        await saver.aput(make_checkpoint("0001"))
        await saver.aput(make_checkpoint("0002", step=1))
        await saver.aput_writes("thread-1", "", "0001", T1, [("count", 5)])
        assert writes_of(await saver.aget_tuple("thread-1", "", "0001")) == [(T1, "count", 5)]
        head = await saver.aget_tuple("thread-1")
        assert head is not None and head.checkpoint.id == "0002" and head.writes == ()

    async def test_writes_replace_per_task_and_channel_keeping_order(
        self, saver: Checkpointer
    ) -> None:
        await saver.aput(make_checkpoint("0001"))
        await saver.aput_writes("thread-1", "", "0001", T1, [("a", 1), ("b", 2)])
        await saver.aput_writes("thread-1", "", "0001", T2, [("a", 10)])
        await saver.aput_writes("thread-1", "", "0001", T1, [("b", 3), ("c", 4)])
        await saver.aput_writes("thread-1", "", "0001", T2, [("a", 11)])
        assert writes_of(await saver.aget_tuple("thread-1")) == [
            (T1, "a", 1),
            (T1, "b", 3),
            (T2, "a", 11),
            (T1, "c", 4),
        ]

    async def test_writes_without_channels_are_a_no_op(self, saver: Checkpointer) -> None:
        await saver.aput(make_checkpoint("0001"))
        await saver.aput_writes("thread-1", "", "0001", T1, [])
        assert writes_of(await saver.aget_tuple("thread-1")) == []

    async def test_engine_write_records_round_trip(self, saver: Checkpointer) -> None:
        record = InterruptRecord(
            id="c" * 32,
            value={"question": "Approve?", "amount": 12.5},
            node="review",
            ns="",
            schema={"type": "boolean"},
            timeout=30.0,
            has_default=True,
            default=None,
        )
        await saver.aput(make_checkpoint("0001"))
        await saver.aput_writes("thread-1", "", "0001", T1, [(INTERRUPT, [record])])
        await saver.aput_writes("thread-1", "", "0001", T1, [(RESUME, [True, {"edit": "x"}])])
        await saver.aput_writes(
            "thread-1", "", "0001", T2, [(ERROR, {"type": "E", "message": "m"})]
        )
        await saver.aput_writes("thread-1", "", "0001", NULL_TASK_ID, [("count", 7)])
        assert writes_of(await saver.aget_tuple("thread-1")) == [
            (T1, INTERRUPT, [record]),
            (T1, RESUME, [True, {"edit": "x"}]),
            (T2, ERROR, {"type": "E", "message": "m"}),
            (NULL_TASK_ID, "count", 7),
        ]

    # ---------------------------------------------------------------- delete

    async def test_delete_thread_removes_every_namespace(self, saver: Checkpointer) -> None:
        sub = f"child:{T1}"
        for thread_id in ("gone", "kept"):
            await saver.aput(make_checkpoint("0001", thread_id=thread_id))
            await saver.aput(make_checkpoint("0002", thread_id=thread_id, ns=sub))
            await saver.aput_writes(thread_id, "", "0001", T1, [("x", 1)])
            await saver.aput_writes(thread_id, sub, "0002", T1, [("x", 1)])
        await saver.adelete_thread("gone")
        assert await saver.aget_tuple("gone") is None
        assert await saver.aget_tuple("gone", sub) is None
        assert await saver.alist("gone") == [] and await saver.alist("gone", sub) == []
        assert writes_of(await saver.aget_tuple("kept")) == [(T1, "x", 1)]
        assert writes_of(await saver.aget_tuple("kept", sub)) == [(T1, "x", 1)]
        await saver.adelete_thread("never-existed")  # no error

    # ---------------------------------------------------------------- values

    async def test_values_round_trip(self, saver: Checkpointer) -> None:
        cp = make_checkpoint(
            "0001",
            values=dict(RICH_VALUES),
            tasks=(TaskSpec(id=T2, name="n", path=("push", 3), arg=RICH_VALUES["pydantic"]),),
            extra={"seen": RICH_VALUES["set"], "when": RICH_VALUES["datetime"]},
        )
        await saver.aput(cp)
        await saver.aput_writes("thread-1", "", "0001", T2, list(RICH_VALUES.items()))
        found = await saver.aget_tuple("thread-1")
        assert found is not None
        assert dict(found.checkpoint.values) == RICH_VALUES
        for key, value in found.checkpoint.values.items():
            assert type(value) is type(RICH_VALUES[key]), key
        assert found.checkpoint == cp
        assert writes_of(found) == [(T2, k, v) for k, v in RICH_VALUES.items()]


class SerializingSaverConformance(SaverConformance):
    """For savers that store bytes: a value that cannot be stored is an error and writes nothing."""

    async def test_unserializable_checkpoint_writes_nothing(self, saver: Checkpointer) -> None:
        original = make_checkpoint("0001", values={"ok": 1})
        await saver.aput(original)
        with pytest.raises(SerializationError, match="Opaque"):
            await saver.aput(make_checkpoint("0001", values={"bad": [Opaque()]}))
        with pytest.raises(SerializationError, match="Opaque"):
            await saver.aput(make_checkpoint("0002", values={"ok": 1}, extra={"x": Opaque()}))
        found = await saver.aget_tuple("thread-1")
        assert found is not None and found.checkpoint == original
        assert ids(await saver.alist("thread-1")) == ["0001"]

    async def test_unserializable_write_writes_nothing(self, saver: Checkpointer) -> None:
        await saver.aput(make_checkpoint("0001"))
        await saver.aput_writes("thread-1", "", "0001", T1, [("a", 1)])
        with pytest.raises(SerializationError) as caught:
            await saver.aput_writes("thread-1", "", "0001", T1, [("a", 2), ("b", {"k": Opaque()})])
        assert "Opaque" in str(caught.value) and "$.k" in str(caught.value)
        assert writes_of(await saver.aget_tuple("thread-1")) == [(T1, "a", 1)]
