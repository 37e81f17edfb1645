"""BufferedCheckpointer: a conforming saver whose puts reach the database only at flush."""

from __future__ import annotations

import pytest
from conformance import T1, T2, SerializingSaverConformance, make_checkpoint, writes_of
from sqlalchemy.ext.asyncio import AsyncEngine

from app.checkpoint.base import Checkpointer
from app.checkpoint.serde import SerializationError
from app.checkpoint.sql import BufferedCheckpointer, SqlCheckpointer, TaskWrite


class TestBufferedOverEmptyStore(SerializingSaverConformance):
    """Everything in the buffer: reads must see it as a saver would."""

    @pytest.fixture
    def saver(self, db_engine: AsyncEngine) -> Checkpointer:
        return BufferedCheckpointer(SqlCheckpointer(db_engine))


class FlushingSaver(BufferedCheckpointer):
    """Flushes after every call: the stored data plus an empty buffer must conform too."""

    def __init__(self, inner: SqlCheckpointer) -> None:
        super().__init__(inner)
        self.sql = inner

    async def _flushed(self) -> None:
        async with self.sql.engine.begin() as conn:
            await self.flush(conn)
        self.clear()

    async def aput(self, checkpoint):  # type: ignore[no-untyped-def]
        await super().aput(checkpoint)
        await self._flushed()

    async def aput_writes(self, *args):  # type: ignore[no-untyped-def]
        await super().aput_writes(*args)
        await self._flushed()


class TestBufferedFlushedEachCall(SerializingSaverConformance):
    @pytest.fixture
    def saver(self, db_engine: AsyncEngine) -> Checkpointer:
        return FlushingSaver(SqlCheckpointer(db_engine))


@pytest.fixture
def stored(db_engine: AsyncEngine) -> SqlCheckpointer:
    return SqlCheckpointer(db_engine)


async def test_nothing_reaches_the_database_before_flush(stored: SqlCheckpointer) -> None:
    buffered = BufferedCheckpointer(stored)
    await buffered.aput(make_checkpoint("0001"))
    await buffered.aput_writes("thread-1", "", "0001", T1, [("a", 1)])
    assert await stored.aget_tuple("thread-1") is None
    assert buffered.buffered_checkpoints == [make_checkpoint("0001")]
    assert buffered.buffered_writes == [TaskWrite("thread-1", "", "0001", T1, "a", 1)]

    async with stored.engine.begin() as conn:
        await buffered.flush(conn)
    assert writes_of(await stored.aget_tuple("thread-1")) == [(T1, "a", 1)]


async def test_reads_overlay_buffer_on_stored_data(stored: SqlCheckpointer) -> None:
    await stored.aput(make_checkpoint("0001"))
    await stored.aput_writes("thread-1", "", "0001", T1, [("a", 1), ("b", 2)])
    buffered = BufferedCheckpointer(stored)

    # A resume: new answers against the stored head, then the next checkpoint.
    await buffered.aput_writes("thread-1", "", "0001", T1, [("b", 20)])
    await buffered.aput_writes("thread-1", "", "0001", T2, [("c", 3)])
    assert writes_of(await buffered.aget_tuple("thread-1")) == [
        (T1, "a", 1),
        (T1, "b", 20),
        (T2, "c", 3),
    ]
    await buffered.aput(make_checkpoint("0002", parent_id="0001", step=1))
    head = await buffered.aget_tuple("thread-1")
    assert head is not None and head.checkpoint.id == "0002" and head.writes == ()
    assert [t.checkpoint.id for t in await buffered.alist("thread-1")] == ["0002", "0001"]
    assert [t.checkpoint.id for t in await buffered.alist("thread-1", limit=1)] == ["0002"]
    older = await buffered.alist("thread-1", before="0002")
    assert len(older) == 1 and writes_of(older[0])[1] == (T1, "b", 20)

    async with stored.engine.begin() as conn:
        await buffered.flush(conn)
        await buffered.flush(conn)  # a second flush changes nothing
    assert writes_of(await stored.aget_tuple("thread-1", "", "0001")) == [
        (T1, "a", 1),
        (T1, "b", 20),
        (T2, "c", 3),
    ]
    head = await stored.aget_tuple("thread-1")
    assert head is not None and head.checkpoint.id == "0002"


async def test_rolled_back_flush_writes_nothing(stored: SqlCheckpointer) -> None:
    buffered = BufferedCheckpointer(stored)
    await buffered.aput(make_checkpoint("0001"))
    with pytest.raises(RuntimeError):
        async with stored.engine.begin() as conn:
            await buffered.flush(conn)
            raise RuntimeError("lease lost")
    assert await stored.aget_tuple("thread-1") is None
    assert len(buffered.buffered_checkpoints) == 1  # still there for a retry


async def test_unserializable_put_fails_at_put(stored: SqlCheckpointer) -> None:
    buffered = BufferedCheckpointer(stored)
    with pytest.raises(SerializationError):
        await buffered.aput(make_checkpoint("0001", values={"bad": object()}))
    with pytest.raises(SerializationError):
        await buffered.aput_writes("thread-1", "", "0001", T1, [("ok", 1), ("bad", object())])
    assert buffered.buffered_checkpoints == [] and buffered.buffered_writes == []


async def test_delete_thread_drops_buffer_and_store(stored: SqlCheckpointer) -> None:
    await stored.aput(make_checkpoint("0001"))
    buffered = BufferedCheckpointer(stored)
    await buffered.aput(make_checkpoint("0002"))
    await buffered.aput(make_checkpoint("0001", thread_id="other"))
    await buffered.adelete_thread("thread-1")
    assert await buffered.aget_tuple("thread-1") is None
    assert await stored.aget_tuple("thread-1") is None
    assert [cp.thread_id for cp in buffered.buffered_checkpoints] == ["other"]


class FlushBeforeReads(BufferedCheckpointer):
    """Flushes (then forgets) the buffer before every read: checkpoints put with their writes
    are stored with them in one row, writes made after go to the writes table, and reads
    merge both."""

    def __init__(self, inner: SqlCheckpointer) -> None:
        super().__init__(inner)
        self.sql = inner

    async def _flushed(self) -> None:
        async with self.sql.engine.begin() as conn:
            await self.flush(conn)
        self.clear()

    async def aget_tuple(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await self._flushed()
        return await super().aget_tuple(*args, **kwargs)

    async def alist(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await self._flushed()
        return await super().alist(*args, **kwargs)


class TestBufferedFlushedBeforeReads(SerializingSaverConformance):
    @pytest.fixture
    def saver(self, db_engine: AsyncEngine) -> Checkpointer:
        return FlushBeforeReads(SqlCheckpointer(db_engine))
