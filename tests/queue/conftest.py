"""Queue test helpers: threads inserted with plain SQL, runs enqueued in the same transaction."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from queue_helpers import AddThread
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import ThreadRow
from app.queue import RunId, RunQueue


@pytest.fixture
def queue(db_engine: AsyncEngine) -> RunQueue:
    return RunQueue(db_engine, max_attempts=3)


@pytest.fixture
def add_thread(db_engine: AsyncEngine, queue: RunQueue) -> AddThread:
    """Insert a thread and queue its first run in one transaction, as the API does."""

    async def add(thread_id: str, *, graph: str = "g", input: Any = None) -> RunId:
        async with db_engine.begin() as conn:
            await conn.execute(
                sa.insert(ThreadRow).values(
                    thread_id=thread_id, graph=graph, status="queued", input=input
                )
            )
            return await queue.enqueue(conn, thread_id)

    return add
