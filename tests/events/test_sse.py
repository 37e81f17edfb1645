"""SSE streams through a real uvicorn server: replay, Last-Event-ID, live events, end, lag."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.routes.streams import get_broadcaster
from app.db.engine import create_engine
from app.services.events import NewEvent, record_events
from tests.api.conftest import make_registry, make_settings

from .helpers import add_thread, event
from .sse import app_with_streams, serving, stream


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = app_with_streams(make_settings(db_url), embedded_worker=False, registry=make_registry())
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield app, client


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


async def emit(engine: AsyncEngine, *events: NewEvent) -> None:
    async with engine.begin() as conn:
        await record_events(conn, events, global_webhook_url=None)


async def test_thread_stream_replays_then_follows_then_ends(
    server: tuple[FastAPI, httpx.AsyncClient], engine: AsyncEngine
) -> None:
    _, client = server
    await add_thread(engine, "t1")
    await add_thread(engine, "other")
    await emit(engine, event("t1", "interrupt.created", n=1), event("other", n=0))
    await emit(engine, event("t1", "interrupt.resolved", n=2))
    async with stream(client, "/threads/t1/stream") as sse:
        replayed = await sse.take(2)
        assert [(m.event, m.data["data"]["n"]) for m in replayed] == [
            ("interrupt.created", 1),
            ("interrupt.resolved", 2),
        ]
        await emit(engine, event("other", n=99), event("t1", "interrupt.created", n=3))
        live = await sse.next()
        assert live is not None and (live.event, live.data["data"]["n"]) == ("interrupt.created", 3)
        await emit(engine, event("t1", "thread.completed", n=4))
        final = await sse.next()
        assert final is not None and final.event == "thread.completed"
        assert final.data["type"] == "thread.completed" and len(final.data["id"]) == 32
        assert await sse.next() is None  # the stream ends with the thread


async def test_reconnect_with_last_event_id_loses_nothing(
    server: tuple[FastAPI, httpx.AsyncClient], engine: AsyncEngine
) -> None:
    _, client = server
    await add_thread(engine, "t1")
    await emit(engine, *(event("t1", "interrupt.created", n=i) for i in range(3)))
    async with stream(client, "/threads/t1/stream") as sse:
        first = await sse.take(2)
    # Disconnected after two: more happens meanwhile.
    await emit(engine, event("t1", "interrupt.created", n=3))
    await emit(engine, event("t1", "interrupt.created", n=4))
    headers = {"Last-Event-ID": first[-1].id or ""}
    async with stream(client, "/threads/t1/stream", headers=headers) as sse:
        rest = await sse.take(3)
        await emit(engine, event("t1", "interrupt.created", n=5))
        rest += await sse.take(1)
    assert [m.data["data"]["n"] for m in first + rest] == [0, 1, 2, 3, 4, 5]
    assert len({m.data["id"] for m in first + rest}) == 6
    # ?after= is the same for clients that cannot send headers.
    async with stream(client, "/threads/t1/stream", params={"after": rest[1].id}) as sse:
        assert [m.data["data"]["n"] for m in await sse.take(2)] == [4, 5]


async def test_inbox_stream_is_live_for_all_threads(
    server: tuple[FastAPI, httpx.AsyncClient], engine: AsyncEngine
) -> None:
    _, client = server
    for tid in ("a", "b"):
        await add_thread(engine, tid)
    await emit(engine, event("a", n="before"))  # before connecting: not sent
    async with stream(client, "/interrupts/stream") as sse:
        await emit(engine, event("a", "interrupt.created", n=1))
        await emit(engine, event("b", "interrupt.created", n=2))
        await emit(engine, event("a", "thread.completed", n=3))  # the inbox does not end
        await emit(engine, event("b", "interrupt.resolved", n=4))
        got = await sse.take(4)
    assert [(m.data["data"]["thread_id"], m.data["data"]["n"]) for m in got] == [
        ("a", 1),
        ("b", 2),
        ("a", 3),
        ("b", 4),
    ]
    async with stream(client, "/interrupts/stream", params={"after": got[1].id}) as sse:
        assert [m.data["data"]["n"] for m in await sse.take(2)] == [3, 4]


async def test_finished_thread_with_nothing_new_is_204_and_unknown_is_404(
    server: tuple[FastAPI, httpx.AsyncClient], engine: AsyncEngine
) -> None:
    _, client = server
    await add_thread(engine, "done", status="completed")
    await emit(engine, event("done", "thread.completed"))
    async with stream(client, "/threads/done/stream") as sse:
        (last,) = await sse.take(1)
    response = await client.get("/threads/done/stream", headers={"Last-Event-ID": last.id or ""})
    assert response.status_code == 204
    assert (await client.get("/threads/nope/stream")).status_code == 404
    bad = await client.get("/interrupts/stream", params={"after": "x"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem")


async def test_a_slow_subscriber_catches_up_from_the_database(
    server: tuple[FastAPI, httpx.AsyncClient], engine: AsyncEngine
) -> None:
    app, client = server
    await add_thread(engine, "t1")
    broadcaster = get_broadcaster(app)
    broadcaster.queue_size = 2  # overflow at once
    async with stream(client, "/threads/t1/stream") as sse:
        await emit(engine, event("t1", "interrupt.created", n=0))
        await sse.take(1)
        for i in range(1, 40):
            await emit(engine, event("t1", "interrupt.created", n=i))
        got = await sse.take(39, timeout=20)
    assert [m.data["data"]["n"] for m in got] == list(range(1, 40))


async def test_many_clients_each_get_every_event_once(
    server: tuple[FastAPI, httpx.AsyncClient], engine: AsyncEngine
) -> None:
    _, client = server
    await add_thread(engine, "t1")

    async def watch() -> list[Any]:
        async with stream(client, "/interrupts/stream", params={"after": "0"}) as sse:
            return [m.data["data"]["n"] for m in await sse.take(20, timeout=20)]

    watchers = [asyncio.create_task(watch()) for _ in range(5)]
    await asyncio.gather(*(emit(engine, event("t1", n=i)) for i in range(20)))
    results = await asyncio.gather(*watchers)
    for result in results:
        assert sorted(result) == list(range(20)) and len(result) == 20
