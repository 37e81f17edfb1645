"""SqlCheckpointer on SQLite and PostgreSQL: the conformance suite plus SQL-specific behaviour."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from conformance import T1, T2, SerializingSaverConformance, make_checkpoint, writes_of
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.checkpoint.base import Checkpointer
from app.checkpoint.sql import SqlCheckpointer, TaskWrite, write_batch
from app.db.engine import create_engine
from app.errors import UnavailableError


class TestSqlCheckpointer(SerializingSaverConformance):
    @pytest.fixture
    def saver(self, db_engine: AsyncEngine) -> Checkpointer:
        return SqlCheckpointer(db_engine)


@pytest.fixture
def statements(db_engine: AsyncEngine) -> list[str]:
    """SQL statements the engine sends (BEGIN/COMMIT of asyncpg are not cursor executes)."""
    seen: list[str] = []

    @event.listens_for(db_engine.sync_engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    return seen


def test_satisfies_the_port(db_engine: AsyncEngine) -> None:
    assert isinstance(SqlCheckpointer(db_engine), Checkpointer)


async def test_get_tuple_is_one_statement(db_engine: AsyncEngine, statements: list[str]) -> None:
    saver = SqlCheckpointer(db_engine)
    await saver.aput(make_checkpoint("0001"))
    await saver.aput_writes("thread-1", "", "0001", T1, [("a", 1), ("b", 2), ("c", 3)])
    statements.clear()
    found = await saver.aget_tuple("thread-1")
    assert len(writes_of(found)) == 3
    assert len(statements) == 1
    statements.clear()
    await saver.alist("thread-1", limit=5)
    assert len(statements) == 1


async def test_put_writes_is_one_executemany(db_engine: AsyncEngine, statements: list[str]) -> None:
    saver = SqlCheckpointer(db_engine)
    await saver.aput(make_checkpoint("0001"))
    statements.clear()
    await saver.aput_writes("thread-1", "", "0001", T1, [(f"k{i}", i) for i in range(20)])
    assert len([s for s in statements if "checkpoint_writes" in s]) == 1


async def test_write_batch_joins_the_callers_transaction(db_engine: AsyncEngine) -> None:
    saver = SqlCheckpointer(db_engine)
    checkpoints = [make_checkpoint("0001"), make_checkpoint("0002", parent_id="0001", step=1)]
    writes = [
        TaskWrite("thread-1", "", "0001", T1, "a", 1),
        TaskWrite("thread-1", "", "0001", T2, "b", 2),
        TaskWrite("thread-1", "", "0001", T1, "c", 3),
    ]

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with db_engine.begin() as conn:
            await write_batch(conn, checkpoints, writes)
            raise Rollback
    assert await saver.aget_tuple("thread-1") is None

    async with db_engine.begin() as conn:
        await write_batch(conn, checkpoints, writes)
    found = await saver.aget_tuple("thread-1", "", "0001")
    assert writes_of(found) == [(T1, "a", 1), (T2, "b", 2), (T1, "c", 3)]
    head = await saver.aget_tuple("thread-1")
    assert head is not None and head.checkpoint == checkpoints[1]


async def test_many_tasks_writing_concurrently(db_engine: AsyncEngine) -> None:
    import asyncio

    saver = SqlCheckpointer(db_engine)
    await saver.aput(make_checkpoint("0001"))
    tasks = [f"{i:032x}" for i in range(12)]
    await asyncio.gather(
        *(saver.aput_writes("thread-1", "", "0001", t, [("x", t), ("y", 1)]) for t in tasks)
    )
    found = await saver.aget_tuple("thread-1")
    got = writes_of(found)
    assert sorted(got) == sorted((t, ch, v) for t in tasks for ch, v in (("x", t), ("y", 1)))
    for t in tasks:  # each task's channels keep their order
        assert [ch for task, ch, _ in got if task == t] == ["x", "y"]


async def test_rows_are_plain_for_inspection(db_engine: AsyncEngine) -> None:
    saver = SqlCheckpointer(db_engine)
    await saver.aput(make_checkpoint("0001", metadata={"source": "loop", "step": 3}))
    async with db_engine.connect() as conn:
        row = (await conn.execute(sa.text("SELECT step, source, metadata FROM checkpoints"))).one()
    metadata = (
        row.metadata if isinstance(row.metadata, dict) else __import__("json").loads(row.metadata)
    )
    assert (row.step, row.source, metadata) == (0, "loop", {"source": "loop", "step": 3})


@pytest.fixture
async def dead_engine(tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    yield engine
    await engine.dispose()


async def test_unreachable_database_is_unavailable(dead_engine: AsyncEngine) -> None:
    saver = SqlCheckpointer(dead_engine)
    with pytest.raises(UnavailableError):
        await saver.aget_tuple("thread-1")
    with pytest.raises(UnavailableError):
        await saver.aput(make_checkpoint("0001"))


async def test_missing_tables_are_translated(tmp_path: Any) -> None:
    from app.errors import AppError

    engine = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(AppError) as caught:
            await SqlCheckpointer(engine).aget_tuple("thread-1")
        assert not isinstance(caught.value, sa.exc.SQLAlchemyError)
    finally:
        await engine.dispose()


def test_sync_wrappers_work_from_plain_code(sqlite_url: str) -> None:
    from app.checkpoint.base import run_sync

    engine = create_engine(sqlite_url)
    saver = SqlCheckpointer(engine)
    try:
        saver.put(make_checkpoint("0001"))
        saver.put_writes("thread-1", "", "0001", T1, [("a", 1)])
        assert writes_of(saver.get_tuple("thread-1")) == [(T1, "a", 1)]
        assert [t.checkpoint.id for t in saver.list("thread-1")] == ["0001"]
        saver.delete_thread("thread-1")
        assert saver.get_tuple("thread-1") is None
    finally:
        run_sync(engine.dispose())
