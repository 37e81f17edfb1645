"""``?wait=true`` answers when the run settles: on PostgreSQL the settle watch wakes it on the
worker's NOTIFY (polling is only the fallback), and no connection is held while waiting."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.app import create_app
from app.db.engine import create_engine
from app.db.tables import RunRow, ThreadRow
from app.queue import RunQueue
from app.services import waiting
from app.services.settle_watch import SettleWatch
from app.services.threads import ThreadService
from tests.api.conftest import make_registry, make_settings

#: Generous: a loaded CI machine; without the notification these waits would take 30 s.
PROMPT = 5.0


async def test_waits_wake_on_the_settle_notification(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(waiting, "POLL_WITH_SIGNAL", (30.0, 1.0, 30.0))  # no polling to speak of
    app: FastAPI = create_app(
        make_settings(pg_url, wait_max_seconds=60.0), embedded_worker=True, registry=make_registry()
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            for _ in range(3):
                began = time.monotonic()
                started = await client.post(
                    "/threads", params={"wait": "true"}, json={"graph": "approval"}
                )
                assert started.json()["status"] == "interrupted", started.text
                question = started.json()["interrupts"][0]["id"]
                resumed = await client.post(
                    f"/interrupts/{question}/resume", params={"wait": "true"}, json={"value": "y"}
                )
                assert resumed.json()["status"] == "completed", resumed.text
                assert time.monotonic() - began < PROMPT


async def test_wait_returns_promptly_on_both_databases(db_url: str) -> None:
    app: FastAPI = create_app(make_settings(db_url), embedded_worker=True, registry=make_registry())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hitl.test") as client:
            durations = []
            for _ in range(5):
                tid = (
                    await client.post(
                        "/threads", params={"wait": "true"}, json={"graph": "approval"}
                    )
                ).json()["thread_id"]
                began = time.monotonic()
                resumed = await client.post(
                    f"/threads/{tid}/resume", params={"wait": "true"}, json={"value": "y"}
                )
                durations.append(time.monotonic() - began)
                assert resumed.json()["status"] == "completed"
    assert sorted(durations)[2] < 1.0, durations


async def _queued_thread(engine: AsyncEngine) -> tuple[ThreadService, str]:
    """A thread whose first run is queued, with no worker to run it."""
    threads = ThreadService(engine, make_registry(), RunQueue(engine), wait_max_seconds=30.0)
    outcome = await threads.start("approval", None)
    return threads, outcome.value.thread_id


async def _settle_quietly(engine: AsyncEngine, thread_id: str) -> None:
    """Settle the thread the way no worker would: no event, no NOTIFY."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(RunRow).where(RunRow.thread_id == thread_id).values(status="cancelled")
        )
        await conn.execute(
            sa.update(ThreadRow).where(ThreadRow.thread_id == thread_id).values(status="completed")
        )


async def test_a_silent_settle_is_found_by_polling_and_no_connection_is_held(
    pg_engine: AsyncEngine,
) -> None:
    threads, thread_id = await _queued_thread(pg_engine)
    waiter = asyncio.create_task(threads.wait(thread_id, look_first=False))
    held = []
    for _ in range(20):
        await asyncio.sleep(0.01)
        held.append(pg_engine.pool.checkedout())  # type: ignore[attr-defined]
    assert not waiter.done()
    assert held.count(0) >= 15, held  # only the brief looks take a connection
    await _settle_quietly(pg_engine, thread_id)
    thread = await asyncio.wait_for(waiter, PROMPT)
    assert thread.status == "completed"


async def test_the_bound_ends_the_wait(db_engine: AsyncEngine) -> None:
    threads, thread_id = await _queued_thread(db_engine)
    began = time.monotonic()
    thread = await threads.wait(thread_id, seconds=0.3)
    assert thread.status == "queued"
    assert 0.3 <= time.monotonic() - began < PROMPT


async def test_the_watch_listens_only_while_needed(pg_engine: AsyncEngine) -> None:
    watch = SettleWatch(pg_engine, idle_seconds=0.1)
    with watch.watch("some-thread"):
        for _ in range(500):
            if watch.listening:
                break
            await asyncio.sleep(0.01)
        assert watch.listening
    await asyncio.sleep(0.4)
    assert not watch.listening  # idle: the LISTEN connection is closed
    with watch.watch("some-thread"):
        await asyncio.sleep(0)
        task = watch._listen_task
        assert task is not None
        await pg_engine.dispose()  # the application shuts down
        assert watch._listen_task is None
        await asyncio.sleep(0.05)
        assert task.cancelled() or task.done()


async def _listener_rows(engine: AsyncEngine) -> list[tuple[str, bool]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT purpose, expires_at > now() FROM event_listeners ORDER BY purpose")
        )
        return [(purpose, bool(live)) for purpose, live in rows]


async def test_a_wait_on_a_run_executed_elsewhere_wakes_on_the_notification(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker in the serving process: every run is queued and settled by another worker,
    and only the settle notification (sent because the watch says it listens) wakes the wait."""
    from app.worker import Worker

    monkeypatch.setattr(waiting, "POLL_WITH_SIGNAL", (30.0, 1.0, 30.0))
    monkeypatch.setattr(waiting, "POLL_WITH_FEED", (30.0, 1.0, 30.0))
    settings = make_settings(pg_url, wait_max_seconds=60.0, poll_seconds=30.0)
    app: FastAPI = create_app(settings, embedded_worker=False, registry=make_registry())
    async with app.router.lifespan_context(app):
        engine = app.state.services.engine
        worker = Worker.from_settings(engine, make_registry(), settings)
        working = asyncio.create_task(worker.run())
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://hitl.test"
            ) as client:
                for _ in range(3):
                    began = time.monotonic()
                    started = await client.post(
                        "/threads", params={"wait": "true"}, json={"graph": "approval"}
                    )
                    assert started.json()["status"] == "interrupted", started.text
                    tid = started.json()["thread_id"]
                    resumed = await client.post(
                        f"/threads/{tid}/resume", params={"wait": "true"}, json={"value": "y"}
                    )
                    assert resumed.json()["status"] == "completed", resumed.text
                    assert time.monotonic() - began < PROMPT
            assert await _listener_rows(engine) == [("settle-watch", True)]
        finally:
            worker.stop()
            await working
    engine = create_engine(pg_url)
    try:
        assert await _listener_rows(engine) == []  # shutdown took the row away
    finally:
        await engine.dispose()


async def test_runs_settled_here_send_no_notification(pg_url: str) -> None:
    """With nobody listening for events (no stream, no wait on a queued run) and no webhook,
    a whole cycle records its events and notifies nobody."""
    import asyncpg

    app: FastAPI = create_app(make_settings(pg_url), embedded_worker=True, registry=make_registry())
    heard: list[str] = []
    listener = await asyncpg.connect(pg_url)
    try:
        await listener.add_listener("hitl_events", lambda *args: heard.append(args[-1]))
        async with app.router.lifespan_context(app):
            # Let the embedded worker's task start (a real server takes longer than this to
            # accept its first request); before that a request's run goes to the queue.
            await asyncio.sleep(0.05)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://hitl.test"
            ) as client:
                started = await client.post(
                    "/threads", params={"wait": "true"}, json={"graph": "approval"}
                )
                tid = started.json()["thread_id"]
                resumed = await client.post(
                    f"/threads/{tid}/resume", params={"wait": "true"}, json={"value": "y"}
                )
                assert resumed.json()["status"] == "completed", resumed.text
            async with app.state.services.engine.connect() as conn:
                recorded = await conn.execute(
                    sa.text("SELECT count(*) FROM events WHERE thread_id = :t"), {"t": tid}
                )
                assert recorded.scalar() >= 3  # recorded all the same
                assert await _listener_rows(app.state.services.engine) == []
        await asyncio.sleep(0.2)
        assert heard == []
    finally:
        await listener.close()


async def test_closing_the_watch_deletes_its_listener_row_before_returning(
    pg_engine: AsyncEngine,
) -> None:
    watch = SettleWatch(pg_engine)
    with watch.watch("some-thread"):
        for _ in range(500):
            if watch.listening:
                break
            await asyncio.sleep(0.01)
        assert await _listener_rows(pg_engine) == [("settle-watch", True)]
    await watch.close()  # the application shuts down: no await may come between this and dispose
    assert await _listener_rows(pg_engine) == []
    assert not watch.listening
