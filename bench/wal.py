"""Count one database's *write* transactions from the WAL (pg_waldump), on a shared server.

pg_stat_database's xact_commit counts every COMMIT, read-only ones included, so it cannot say how
many transactions of a cycle actually wrote. The WAL can: a write transaction has an xid, its
records name the database of every relation they touch (``rel <tablespace>/<db oid>/<rel>``),
and it ends with a COMMIT record. Transactions of other databases on the same server (other
people's tests) are told apart by the database oid.

Needs a local server whose data directory this process can read (root, or the postgres user)
and pg_waldump; otherwise the caller gets a reason instead of a number.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench.pg import database_name, find_pg_tool

RECORD = re.compile(r"rmgr: (\S+)\s.*?tx:\s+(\d+), lsn: [^,]+, prev [^,]+, desc: (\S+)")
REL = re.compile(r"rel \d+/(\d+)/\d+")


@dataclass(frozen=True)
class WalMark:
    lsn: str
    wal_dir: Path
    db_oid: int
    conn: asyncpg.Connection  # holds the temporary replication slot that keeps the WAL


async def mark(admin: str, db_url: str) -> WalMark | str:
    """The current WAL position, or why WAL counting is not possible here.

    Other sessions' checkpoints (every DROP DATABASE forces one) may recycle WAL segments within
    seconds, so a *temporary* physical replication slot reserves the WAL from here on. It lives
    as long as the returned mark's connection: `count_since` closes it, and so does any crash.
    """
    if waldump() is None:
        return "pg_waldump not found"
    conn = await asyncpg.connect(admin)
    try:
        data_dir = await conn.fetchval("SHOW data_directory")
        oid = await conn.fetchval(
            "SELECT oid FROM pg_database WHERE datname = $1", database_name(db_url)
        )
        wal_dir = Path(data_dir) / "pg_wal"
        next(wal_dir.iterdir())
        slot = f"hitl_bench_{secrets.token_hex(6)}"
        # The slot reserves from the last checkpoint's redo point; counting starts from now.
        await conn.execute("SELECT pg_create_physical_replication_slot($1, true, true)", slot)
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    except (OSError, StopIteration, asyncpg.PostgresError) as exc:
        await conn.close()
        return f"WAL counting not possible here: {type(exc).__name__}: {exc}"
    return WalMark(str(lsn), wal_dir, int(oid), conn)


def waldump() -> str | None:
    return find_pg_tool("pg_waldump")


def _count(start: WalMark, end_lsn: str) -> dict[str, int]:
    exe = waldump()
    assert exe is not None
    touched: set[int] = set()
    committed: set[int] = set()
    aborted: set[int] = set()
    oid = str(start.db_oid)
    cmd = [exe, "-p", str(start.wal_dir), "-s", start.lsn, "-e", end_lsn]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = RECORD.match(line)
            if not match or match.group(2) == "0":
                continue
            rmgr, xid, desc = match.group(1), int(match.group(2)), match.group(3)
            if rmgr == "Transaction":
                if desc.startswith("COMMIT"):
                    committed.add(xid)
                elif desc.startswith("ABORT"):
                    aborted.add(xid)
            if any(db == oid for db in REL.findall(line)):
                touched.add(xid)
        stderr = proc.stderr.read() if proc.stderr else ""
    if proc.returncode not in (0, None) and not committed:
        raise RuntimeError(f"pg_waldump failed: {stderr[-500:]}")
    return {
        "write_commits": len(touched & committed),
        "write_aborts": len(touched & aborted),
    }


async def write_transactions(start: WalMark) -> dict[str, int]:
    """Write transactions of ``start``'s database committed since ``start`` (up to now)."""
    try:
        end = await start.conn.fetchval("SELECT pg_current_wal_flush_lsn()::text")
        return await asyncio.to_thread(_count, start, str(end))
    finally:
        await start.conn.close()  # drops the temporary slot


async def count_since(start: WalMark | str) -> dict[str, int] | str:
    """`write_transactions`, or the reason (a str) when WAL counting is not possible."""
    if isinstance(start, str):
        return start
    try:
        return await write_transactions(start)
    except (OSError, RuntimeError) as exc:
        return f"WAL count failed: {exc}"
