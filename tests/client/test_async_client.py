"""`AsyncHitlClient` against a real ``hitl serve``: the same calls, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.client import AsyncHitlClient, ConflictError, NotFoundError, ValidationError
from tests.client.server import Server


@pytest.fixture
async def ahitl(server: Server) -> AsyncIterator[AsyncHitlClient]:
    async with AsyncHitlClient(server.url, timeout=30) as client:
        yield client


async def test_start_list_inbox_resume_wait(ahitl: AsyncHitlClient, run_id: str) -> None:
    async with asyncio.timeout(60):
        threads = await asyncio.gather(
            *(
                ahitl.start("numbers", thread_id=f"{run_id}-{n}", metadata={"run": run_id})
                for n in range(3)
            )
        )
        settled = [await ahitl.wait(t.thread_id, timeout=20) for t in threads]
        assert {t.status for t in settled} == {"interrupted"}

        page = await ahitl.list(metadata={"run": run_id}, limit=2)
        assert len(page.items) == 2 and page.next_cursor
        listed = [
            t.thread_id async for t in ahitl.iter_threads(metadata={"run": run_id}, page_size=2)
        ]
        assert sorted(listed) == sorted(t.thread_id for t in threads)

        first = threads[0].thread_id
        [item] = (await ahitl.interrupts(thread_id=first)).items
        assert [i.id async for i in ahitl.iter_interrupts(thread_id=first)] == [item.id]
        await ahitl.resume_interrupt(item.id, {"count": 7}, answered_by="grace")
        done = await ahitl.wait(first, timeout=20)
        assert done.status == "completed" and done.values["answer"] == {"count": 7}
        assert (await ahitl.interrupt(item.id)).answered_by == "grace"

        second = await ahitl.resume(threads[1].thread_id, {"count": 1}, wait=True)
        assert second.status == "completed"
        assert (await ahitl.history(first)).items


async def test_typed_errors(ahitl: AsyncHitlClient, run_id: str) -> None:
    async with asyncio.timeout(60):
        with pytest.raises(NotFoundError):
            await ahitl.get(f"{run_id}-nobody")
        thread = await ahitl.start("numbers", thread_id=f"{run_id}-e", wait=True)
        with pytest.raises(ValidationError) as invalid:
            await ahitl.resume(thread.thread_id, {"count": "many"})
        assert invalid.value.errors[0]["loc"] == ["value", "count"]
        [item] = thread.interrupts
        results = await asyncio.gather(
            *(ahitl.resume_interrupt(item.id, {"count": n}) for n in range(2)),
            return_exceptions=True,
        )
        conflicts = [r for r in results if isinstance(r, ConflictError)]
        assert len(conflicts) == 1, results  # exactly one answer wins
        assert (await ahitl.wait(thread.thread_id, timeout=20)).status == "completed"
        assert {g.name for g in await ahitl.graphs()} >= {"numbers"}
        await ahitl.delete(thread.thread_id)
        with pytest.raises(NotFoundError):
            await ahitl.graph("no-such-graph")
