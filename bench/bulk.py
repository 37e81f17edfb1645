"""Fill hitl's tables with many stored threads, fast, straight in SQL (generate_series).

Why SQL and not the API: a million threads through HTTP would take hours on this machine, and
the list endpoints only read the ``threads`` and ``interrupts`` rows. Every ``every``-th thread is
interrupted with one pending interrupt; the rest are completed. Rows are spread over the past,
oldest first, so "newest first" pages see the most recent ones.

The INSERTs are built from the live table definitions: known columns get realistic values, any
other NOT NULL column without a default gets a neutral value of its type, so a schema change does
not break the benchmark.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

# Expressions over i (1..n), the thread number; "interrupted" is whether i is a multiple of every.
THREAD_COLUMNS = {
    "thread_id": "'bulk-' || lpad(i::text, 8, '0')",
    "graph": "'approval'",
    "status": "CASE WHEN {interrupted} THEN 'interrupted' ELSE 'completed' END",
    "input": "'null'",
    "values": "CASE WHEN {interrupted} THEN '{{}}' ELSE '{{\"approval\": \"yes\"}}' END",
    "next": "CASE WHEN {interrupted} THEN '[\"approval_node\"]' ELSE '[]' END",
    "metadata": "json_build_object('batch', i % 100)::text",
    "created_at": "now() - make_interval(secs => ({n} - i))",
    "updated_at": "now() - make_interval(secs => ({n} - i))",
}
INTERRUPT_COLUMNS = {
    "id": "md5('bulk' || i::text)",
    "thread_id": "'bulk-' || lpad(i::text, 8, '0')",
    "graph": "'approval'",
    "node": "'approval_node'",
    "ns": "''",
    "checkpoint_id": "lpad(i::text, 32, '0')",
    "value": "'\"Do you approve this action?\"'",
    "has_default": "false",
    "status": "'pending'",
    "created_at": "now() - make_interval(secs => ({n} - i))",
}
NEUTRAL = {
    "text": "''",
    "character varying": "''",
    "integer": "0",
    "bigint": "0",
    "smallint": "0",
    "boolean": "false",
    "json": "'{}'",
    "jsonb": "'{}'",
    "bytea": "''::bytea",
    "timestamp with time zone": "now()",
    "timestamp without time zone": "now()",
}


async def _columns(conn: asyncpg.Connection, table: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        table,
    )


async def _insert_sql(
    conn: asyncpg.Connection, table: str, known: dict[str, str], n: int, every: int, where: str
) -> str:
    interrupted = f"i % {every} = 0"
    names, exprs = [], []
    for col in await _columns(conn, table):
        name, dtype = col["column_name"], col["data_type"]
        if name in known:
            expr = known[name].format(interrupted=interrupted, n=n)
        elif col["is_nullable"] == "NO" and col["column_default"] is None:
            expr = NEUTRAL.get(dtype, "''")
        else:
            continue
        cast = {"json": "::json", "jsonb": "::jsonb"}.get(dtype, "")
        names.append(f'"{name}"')
        exprs.append(f"({expr}){cast}")
    if not names:
        raise RuntimeError(f"table {table!r} not found: was the database migrated?")
    return (
        f'INSERT INTO "{table}" ({", ".join(names)}) '
        f"SELECT {', '.join(exprs)} FROM generate_series(1, {n}) AS i {where}"
    )


async def insert_threads(db_url: str, n: int, interrupted_fraction: float) -> dict[str, Any]:
    """Insert ``n`` threads (a fraction interrupted, each with one pending interrupt); ANALYZE."""
    every = max(1, round(1 / interrupted_fraction)) if interrupted_fraction > 0 else n + 1
    conn = await asyncpg.connect(db_url)
    started = time.perf_counter()
    try:
        threads = await _insert_sql(conn, "threads", THREAD_COLUMNS, n, every, "")
        interrupts = await _insert_sql(
            conn, "interrupts", INTERRUPT_COLUMNS, n, every, f"WHERE i % {every} = 0"
        )
        async with conn.transaction():
            await conn.execute(threads)
            await conn.execute(interrupts)
        await conn.execute("ANALYZE threads")
        await conn.execute("ANALYZE interrupts")
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM threads) AS threads, "
            "(SELECT count(*) FROM threads WHERE status = 'interrupted') AS interrupted, "
            "(SELECT count(*) FROM interrupts WHERE status = 'pending') AS pending"
        )
    finally:
        await conn.close()
    assert counts is not None
    return {
        "inserted": n,
        "threads_total": int(counts["threads"]),
        "interrupted_total": int(counts["interrupted"]),
        "pending_interrupts_total": int(counts["pending"]),
        "seconds": round(time.perf_counter() - started, 1),
    }
