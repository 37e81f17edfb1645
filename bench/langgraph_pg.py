"""The baseline: LangGraph's own AsyncPostgresSaver, used as a library (no HTTP, no queue).

A round trip is ``ainvoke(input)`` up to the interrupt, then ``ainvoke(Command(resume=...))`` to
the end, on the seed's approval graph, with a psycopg connection pool as large as the number of
concurrent callers (so the saver is never starved of connections).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

from bench import pg, wal
from bench.graphs import ASK_ACT_INPUT, langgraph_approval, langgraph_ask_act
from bench.http_load import ms, percentile


async def _saver(db_url: str, pool_size: int) -> tuple[Any, Any]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        db_url,
        min_size=pool_size,
        max_size=pool_size,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True)
    saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
    await saver.setup()
    return saver, pool


async def round_trips(
    admin: str, db_url: str, concurrency: int, *, seconds: float | None, count: int | None = None
) -> dict[str, Any]:
    """Interrupt round trips with ``concurrency`` concurrent callers; rate, latency, commits."""
    from langgraph.types import Command

    saver, pool = await _saver(db_url, concurrency)
    try:
        graph = langgraph_approval(saver)
        resumes: list[float] = []
        totals: list[float] = []

        async def loop(deadline: float, budget: list[float]) -> None:
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                config = {"configurable": {"thread_id": uuid.uuid4().hex}}
                t0 = time.perf_counter()
                paused = await graph.ainvoke({"approval": ""}, config)
                if "__interrupt__" not in paused:
                    raise RuntimeError(f"LangGraph did not pause: {paused!r}")
                t1 = time.perf_counter()
                done = await graph.ainvoke(Command(resume="yes"), config)
                if done.get("approval") != "yes":
                    raise RuntimeError(f"LangGraph resume gave {done!r}")
                t2 = time.perf_counter()
                resumes.append(t2 - t1)
                totals.append(t2 - t0)

        warm_up = [float(2 * concurrency)]
        await asyncio.gather(*(loop(math.inf, warm_up) for _ in range(concurrency)))
        resumes.clear()
        totals.clear()
        budget = [float(count) if count is not None else math.inf]
        before = await pg.counters(admin, db_url)
        start = await wal.mark(admin, db_url)
        t0 = time.perf_counter()
        deadline = t0 + seconds if seconds else math.inf
        await asyncio.gather(*(loop(deadline, budget) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        writes = await wal.count_since(start)
        delta = await pg.counters(admin, db_url) - before
    finally:
        await pool.close()
    done_n = len(totals)
    return {
        "concurrency": concurrency,
        "round_trips": done_n,
        "seconds": round(elapsed, 2),
        "round_trips_per_second": round(done_n / elapsed, 1) if elapsed else None,
        "round_trip_ms": {"p50": ms(percentile(totals, 50)), "p99": ms(percentile(totals, 99))},
        "resume_ms": {"p50": ms(percentile(resumes, 50)), "p99": ms(percentile(resumes, 99))},
        "all_commits_per_round_trip": round(delta.commits / done_n, 2) if done_n else None,
        "write_commits_per_round_trip": (
            (writes if isinstance(writes, str) else round(writes["write_commits"] / done_n, 2))
            if done_n
            else None
        ),
    }


async def storage(db_url: str, threads: int) -> dict[str, Any]:
    """Bytes LangGraph's saver stores per thread paused in the ask -> act graph."""
    saver, pool = await _saver(db_url, 8)
    try:
        graph = langgraph_ask_act(saver)
        before = await pg.table_sizes(db_url)
        queue = list(range(threads))

        async def loop() -> None:
            while queue:
                queue.pop()
                config = {"configurable": {"thread_id": uuid.uuid4().hex}}
                out = await graph.ainvoke(dict(ASK_ACT_INPUT), config)
                if "__interrupt__" not in out:
                    raise RuntimeError(f"LangGraph did not pause: {out!r}")

        await asyncio.gather(*(loop() for _ in range(8)))
    finally:
        await pool.close()
    return await pg.storage_per_thread(db_url, before, threads, skip={"checkpoint_migrations"})
