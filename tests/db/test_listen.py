"""`app.db.listen`: every listener of a process shares one LISTEN connection per database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from app.db.listen import PgListener

pytestmark = pytest.mark.postgres


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(pg_url)
    yield conn
    await conn.close()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.05)


async def listening_backends(admin: asyncpg.Connection) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'"
    )
    return [r["pid"] for r in rows]


class Heard:
    def __init__(self) -> None:
        self.payloads: list[str | None] = []

    def __call__(self, payload: str | None) -> None:
        self.payloads.append(payload)


async def test_listeners_share_one_connection_and_each_hears_its_channel(
    pg_url: str, admin: asyncpg.Connection
) -> None:
    runs, events, more_events = Heard(), Heard(), Heard()
    listeners = [
        PgListener(pg_url, "hitl_runs", runs),
        PgListener(pg_url, "hitl_events", events),
        PgListener(pg_url, "hitl_events", more_events),
    ]
    tasks = [asyncio.create_task(listener.run()) for listener in listeners]
    try:
        for listener in listeners:
            await asyncio.wait_for(listener.listening.wait(), 10)
        assert len(await listening_backends(admin)) == 1

        await admin.execute("SELECT pg_notify('hitl_events', 'e1'), pg_notify('hitl_runs', 'r1')")
        await until(lambda: _heard(runs, events, more_events, "r1", "e1"))
        assert runs.payloads == [None, "r1"]  # None: the catch-up call after connecting
        assert events.payloads == more_events.payloads == [None, "e1"]

        # One listener stops: the others keep the connection and their channel.
        tasks[2].cancel()
        await asyncio.gather(tasks[2], return_exceptions=True)
        await admin.execute("SELECT pg_notify('hitl_events', 'e2')")
        await until(lambda: _contains(events, "e2"))
        assert more_events.payloads == [None, "e1"]
        assert len(await listening_backends(admin)) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await until(lambda: _none_listening(admin))  # the last one out closes the connection


async def test_a_cut_connection_reconnects_every_listener(
    pg_url: str, admin: asyncpg.Connection
) -> None:
    runs, events = Heard(), Heard()
    listeners = [PgListener(pg_url, "hitl_runs", runs), PgListener(pg_url, "hitl_events", events)]
    tasks = [asyncio.create_task(listener.run()) for listener in listeners]
    try:
        for listener in listeners:
            await asyncio.wait_for(listener.listening.wait(), 10)
        (pid,) = await listening_backends(admin)
        await admin.execute("SELECT pg_terminate_backend($1)", pid)

        # Both come back on one new connection, each told to catch up (None) again.
        await until(lambda: _caught_up_twice(runs, events))
        await until(lambda: _one_other_listener(admin, pid))
        await admin.execute("SELECT pg_notify('hitl_events', 'e'), pg_notify('hitl_runs', 'r')")
        await until(lambda: _heard(runs, events, events, "r", "e"))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _heard(runs: Heard, a: Heard, b: Heard, run: str, event: str) -> bool:
    return run in runs.payloads and event in a.payloads and event in b.payloads


async def _contains(heard: Heard, payload: str) -> bool:
    return payload in heard.payloads


async def _caught_up_twice(*heard: Heard) -> bool:
    return all(h.payloads.count(None) == 2 for h in heard)


async def _none_listening(admin: asyncpg.Connection) -> bool:
    return not await listening_backends(admin)


async def _one_other_listener(admin: asyncpg.Connection, old: int) -> bool:
    pids = await listening_backends(admin)
    return len(pids) == 1 and pids[0] != old
