"""PostgreSQL plumbing for the service benchmark: scratch databases, counters, sizes, pgbench.

Every database made here is uniquely named (``hitl_bench_<what>_<random>``) and dropped by the
caller, so benchmarks never touch anyone else's data on a shared server.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def server_version(admin: str) -> str:
    conn = await asyncpg.connect(admin)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(admin: str, what: str) -> AsyncIterator[str]:
    """A fresh empty database for the block; yields its plain postgresql:// URL."""
    name = f"hitl_bench_{what}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield with_database(admin, name)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@dataclass(frozen=True)
class DbCounters:
    """pg_stat_database counters of one database at one moment."""

    commits: int
    rollbacks: int
    inserted: int
    updated: int
    deleted: int

    def __sub__(self, other: DbCounters) -> DbCounters:
        return DbCounters(
            self.commits - other.commits,
            self.rollbacks - other.rollbacks,
            self.inserted - other.inserted,
            self.updated - other.updated,
            self.deleted - other.deleted,
        )


#: A PostgreSQL 15 backend that goes idle less than a second after its last statistics flush
#: flushes again only 10 s later (PGSTAT_IDLE_INTERVAL): wait that long before reading counters.
STATS_SETTLE_SECONDS = 11.0


async def counters(admin: str, db_url: str, settle: float = STATS_SETTLE_SECONDS) -> DbCounters:
    """Counters of ``db_url``'s database, read from the admin database (so reading adds nothing).

    Waits ``settle`` seconds first so the numbers include everything that happened before the
    call (see STATS_SETTLE_SECONDS).
    """
    if settle:
        await asyncio.sleep(settle)
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
            "FROM pg_stat_database WHERE datname = $1",
            database_name(db_url),
        )
    finally:
        await conn.close()
    if row is None:
        raise RuntimeError(f"no pg_stat_database row for {database_name(db_url)}")
    return DbCounters(*(int(v) for v in row))


async def table_sizes(db_url: str) -> dict[str, dict[str, int]]:
    """Per table of the public schema: total bytes on disk (heap+indexes+TOAST), live row bytes, rows."""
    conn = await asyncpg.connect(db_url)
    try:
        names = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        out: dict[str, dict[str, int]] = {}
        for name in names:
            row = await conn.fetchrow(
                f"SELECT pg_total_relation_size('public.\"{name}\"') AS total, "
                f'coalesce(sum(pg_column_size(t.*)), 0) AS row_bytes, count(*) AS n FROM "{name}" t'
            )
            assert row is not None
            out[name] = {
                "total": int(row["total"]),
                "rows": int(row["row_bytes"]),
                "n": int(row["n"]),
            }
        return out
    finally:
        await conn.close()


async def vacuum(db_url: str) -> None:
    """Clear dead row versions and refresh statistics: autovacuum's work, for servers that run
    without it (the shared one here has ``autovacuum = off``)."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def vacuum_full(db_url: str) -> None:
    """Rewrite every table compactly: what the live rows and their indexes cost without bloat."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("VACUUM FULL")
    finally:
        await conn.close()


async def storage_per_thread(
    db_url: str, before: dict[str, dict[str, int]], threads: int, skip: set[str]
) -> dict[str, Any]:
    """Bytes per thread since ``before``: as written (dead row versions and index splits
    included, so it depends on autovacuum's timing) and after VACUUM FULL (reproducible)."""
    written = size_delta(before, await table_sizes(db_url), skip)
    await vacuum_full(db_url)
    compacted = size_delta(before, await table_sizes(db_url), skip)
    out = per_thread(compacted, threads)
    out["as_written_disk_bytes_per_thread"] = per_thread(written, threads)["disk_bytes_per_thread"]
    return out


def per_thread(delta: dict[str, dict[str, int]], threads: int) -> dict[str, Any]:
    total = sum(d["total"] for d in delta.values())
    rows = sum(d["rows"] for d in delta.values())
    return {
        "threads": threads,
        "disk_bytes_per_thread": round(total / threads) if threads else None,
        "row_bytes_per_thread": round(rows / threads) if threads else None,
        "tables": {
            name: {
                "disk_bytes_per_thread": round(d["total"] / threads),
                "row_bytes_per_thread": round(d["rows"] / threads),
                "rows_per_thread": round(d["n"] / threads, 2),
            }
            for name, d in delta.items()
            if d["total"] or d["n"]
        },
    }


def size_delta(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], skip: set[str]
) -> dict[str, dict[str, int]]:
    out = {}
    for name, now in after.items():
        if name in skip:
            continue
        was = before.get(name, {"total": 0, "rows": 0, "n": 0})
        out[name] = {key: now[key] - was[key] for key in now}
    return out


def find_pg_tool(name: str) -> str | None:
    """A PostgreSQL client program: on PATH, else in Debian's /usr/lib/postgresql/<v>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


async def pgbench_insert_rate(admin: str, clients: int, seconds: float) -> dict[str, Any]:
    """pgbench running a one-row INSERT transaction with ``clients`` clients: commits per second."""
    exe = find_pg_tool("pgbench")
    if exe is None:
        return {"error": "pgbench not found (PATH, /usr/lib/postgresql/*/bin)"}
    async with scratch_database(admin, "pgbench") as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, v int NOT NULL)")
        finally:
            await conn.close()
        parts = urlsplit(url)
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.write("INSERT INTO t (v) VALUES (1);\n")
        env = dict(os.environ)
        if parts.password:
            env["PGPASSWORD"] = parts.password
        cmd = [
            exe,
            "-n",  # no vacuum of the standard tables (we use our own)
            "-c", str(clients),
            "-j", str(min(clients, os.cpu_count() or 1)),
            "-T", str(max(1, round(seconds))),
            "-f", script.name,
            "-h", parts.hostname or "127.0.0.1",
            "-p", str(parts.port or 5432),
            "-U", parts.username or "postgres",
            database_name(url),
        ]  # fmt: skip
        try:
            proc = await asyncio.to_thread(
                subprocess.run, cmd, capture_output=True, text=True, env=env, timeout=seconds + 60
            )
        finally:
            os.unlink(script.name)
        match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", proc.stdout)
        if proc.returncode != 0 or not match:
            return {"error": f"pgbench failed ({proc.returncode}): {proc.stderr[-500:]}"}
        return {
            "clients": clients,
            "seconds": max(1, round(seconds)),
            "commits_per_second": round(float(match.group(1)), 1),
        }
