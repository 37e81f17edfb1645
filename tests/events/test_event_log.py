"""The event log: written in the caller's transaction (outbox), read in an order that never skips."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import InvalidInputError
from app.services.event_feed import latest_cursor, read_events
from app.services.events import EventCursor, record_events

from .helpers import add_thread, all_events, deliveries, event


async def test_events_and_deliveries_commit_with_the_transaction(db_engine: AsyncEngine) -> None:
    await add_thread(db_engine, "t1", webhook="http://thread.example/hook")
    async with db_engine.begin() as conn:
        await record_events(
            conn,
            [event("t1", "interrupt.created", n=1), event("t1", "thread.completed", n=2)],
            global_webhook_url="http://global.example/hook",
        )
    stored = await all_events(db_engine)
    assert [(e.type, e.payload["n"]) for e in stored] == [
        ("interrupt.created", 1),
        ("thread.completed", 2),
    ]
    assert len({e.event_id for e in stored}) == 2
    rows = await deliveries(db_engine)
    assert sorted((r["uuid"], r["url"]) for r in rows) == sorted(
        (e.event_id, url)
        for e in stored
        for url in ("http://global.example/hook", "http://thread.example/hook")
    )
    assert {(r["status"], r["attempts"]) for r in rows} == {("pending", 0)}


async def test_rollback_leaves_no_event_and_no_delivery(db_engine: AsyncEngine) -> None:
    await add_thread(db_engine, "t1", webhook="http://thread.example/hook")
    with pytest.raises(RuntimeError):
        async with db_engine.begin() as conn:
            await record_events(conn, [event("t1")], global_webhook_url="http://g.example/")
            raise RuntimeError("the use case failed after recording")
    assert await all_events(db_engine) == []
    assert await deliveries(db_engine) == []


async def test_one_delivery_per_distinct_url_and_none_without_urls(db_engine: AsyncEngine) -> None:
    await add_thread(db_engine, "same", webhook="http://one.example/hook")
    await add_thread(db_engine, "quiet")
    async with db_engine.begin() as conn:
        await record_events(conn, [event("same")], global_webhook_url="http://one.example/hook")
        await record_events(conn, [event("quiet")], global_webhook_url=None)
    assert [r["url"] for r in await deliveries(db_engine)] == ["http://one.example/hook"]
    assert len(await all_events(db_engine)) == 2


async def test_cursor_filters_and_paging(db_engine: AsyncEngine) -> None:
    for tid, tenant in (("a", "acme"), ("b", "globex")):
        await add_thread(db_engine, tid, tenant=tenant)
    for i in range(5):
        async with db_engine.begin() as conn:
            tid = "a" if i % 2 == 0 else "b"
            ev = event(tid, n=i)
            ev = type(ev)(
                ev.type, ev.thread_id, ev.graph, "acme" if tid == "a" else "globex", ev.payload
            )
            await record_events(conn, [ev], global_webhook_url=None)
    everything = await all_events(db_engine)
    assert [e.payload["n"] for e in everything] == [0, 1, 2, 3, 4]
    assert [e.cursor for e in everything] == sorted(e.cursor for e in everything)
    assert [e.payload["n"] for e in await all_events(db_engine, thread_id="a")] == [0, 2, 4]
    assert [e.payload["n"] for e in await all_events(db_engine, tenant="globex")] == [1, 3]
    async with db_engine.connect() as conn:
        page = await read_events(conn, everything[1].cursor, limit=2)
        assert [e.payload["n"] for e in page.events] == [2, 3]
        again = await read_events(conn, EventCursor.parse(str(everything[3].cursor)))
        assert [e.payload["n"] for e in again.events] == [4]
        assert (await read_events(conn, await latest_cursor(conn))).events == []


def test_cursor_text_round_trip_and_bad_input() -> None:
    for cursor in (EventCursor(), EventCursor(0, 17), EventCursor(812, 15)):
        assert EventCursor.parse(str(cursor)) == cursor
    assert EventCursor.parse(None) == EventCursor.parse("") == EventCursor()
    assert EventCursor(5, 1) > EventCursor(4, 99) > EventCursor(0, 1000)
    for bad in ("x", "1-", "-3", "1-2-3", "1.5"):
        with pytest.raises(InvalidInputError):
            EventCursor.parse(bad)


async def test_envelope_is_stable_json(db_engine: AsyncEngine) -> None:
    await add_thread(db_engine, "t1")
    async with db_engine.begin() as conn:
        await record_events(conn, [event("t1", answer={"ok": True})], global_webhook_url=None)
    (stored,) = await all_events(db_engine)
    (again,) = await all_events(db_engine)
    assert stored.body() == again.body()
    envelope = stored.envelope()
    assert envelope["id"] == stored.event_id and envelope["type"] == "thread.completed"
    assert envelope["data"]["answer"] == {"ok": True}


async def test_postgres_reader_never_moves_past_an_uncommitted_older_event(
    pg_url: str,
) -> None:
    """Ids are not commit order on PostgreSQL: an older open transaction holds readers back."""
    from app.db.engine import create_engine

    engine = create_engine(pg_url)
    try:
        await add_thread(engine, "t1")
        async with engine.connect() as slow:
            slow_tx = await slow.begin()
            await record_events(slow, [event("t1", n="slow")], global_webhook_url=None)
            async with engine.begin() as fast:
                await record_events(fast, [event("t1", n="fast")], global_webhook_url=None)
            slow_xid = int(
                (await slow.execute(sa.text("SELECT CAST(pg_current_xact_id() AS text)"))).scalar()
            )
            async with engine.connect() as conn:
                held = await read_events(conn, EventCursor())
                assert held.events == [] and held.held_by is not None
                # A transaction stuck for long may be ignored on purpose. (Other sessions of
                # the cluster may hold the horizon for a moment too: look again.)
                for _ in range(100):
                    ignoring = await read_events(conn, EventCursor(), ignore_tx={slow_xid})
                    if ignoring.events:
                        break
                    await asyncio.sleep(0.02)
                assert [e.payload["n"] for e in ignoring.events] == ["fast"]
                start = await latest_cursor(conn)
            await slow_tx.commit()
        async with engine.connect() as conn:
            final = await read_events(conn, EventCursor())
            assert final.held_by is None
            assert [e.payload["n"] for e in final.events] == ["slow", "fast"]
            # A live reader that started while "slow" was open sees both.
            live = await read_events(conn, start)
            assert [e.payload["n"] for e in live.events] == ["slow", "fast"]
    finally:
        await engine.dispose()


async def test_concurrent_writers_each_event_read_exactly_once(db_engine: AsyncEngine) -> None:
    """Many concurrent transactions; a reader polling with its cursor sees each event once."""
    await add_thread(db_engine, "t1")
    seen: list[int] = []
    done = asyncio.Event()

    async def writer(i: int) -> None:
        async with db_engine.begin() as conn:
            await record_events(conn, [event("t1", n=i)], global_webhook_url=None)
            await asyncio.sleep(0.001 * (i % 5))

    async def reader() -> None:
        cursor = EventCursor()
        while True:
            finished = done.is_set()
            async with db_engine.connect() as conn:
                batch = await read_events(conn, cursor)
            for e in batch.events:
                seen.append(e.payload["n"])
                cursor = e.cursor
            if finished and not batch.events and batch.held_by is None:
                return
            await asyncio.sleep(0.002)

    reading = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i) for i in range(40)))
    done.set()
    await asyncio.wait_for(reading, 20)
    assert sorted(seen) == list(range(40))


async def test_postgres_notifies_at_commit_with_the_number_of_deliveries(pg_url: str) -> None:
    import asyncpg

    from app.db.engine import create_engine
    from app.services.events import EVENTS_CHANNEL, notify_has_deliveries

    engine = create_engine(pg_url)
    listener = await asyncpg.connect(pg_url)
    got: asyncio.Queue[str] = asyncio.Queue()
    hold = sa.text(
        "INSERT INTO event_listeners (listener_id, purpose, expires_at) "
        "VALUES (:id, 'test', now() + make_interval(secs => :ttl))"
    )
    try:
        await listener.add_listener(EVENTS_CHANNEL, lambda *args: got.put_nowait(args[-1]))
        await add_thread(engine, "t1")
        # Nobody says it listens (an expired row does not count) and no delivery: no NOTIFY.
        async with engine.begin() as conn:
            await conn.execute(hold, {"id": "gone", "ttl": -1})
        async with engine.begin() as conn:
            await record_events(conn, [event("t1")], global_webhook_url=None)
        # Deliveries were created: the dispatchers are told, whoever else listens.
        async with engine.begin() as conn:
            await record_events(conn, [event("t1"), event("t1")], global_webhook_url="http://x/")
        loud = await asyncio.wait_for(got.get(), 5)
        assert loud.endswith(" 2") and notify_has_deliveries(loud)
        # A live listener row: every event is notified, at commit.
        async with engine.begin() as conn:
            await conn.execute(hold, {"id": "live", "ttl": 30})
        async with engine.begin() as conn:
            await record_events(conn, [event("t1")], global_webhook_url=None)
            await asyncio.sleep(0.1)
            assert got.empty()  # nothing before the commit
        quiet = await asyncio.wait_for(got.get(), 5)
        assert quiet.endswith(" 0") and not notify_has_deliveries(quiet)
        assert int(quiet.split()[0]) > int(loud.split()[0]) > 0
        assert got.empty()  # the first event, heard by nobody, sent nothing
        assert notify_has_deliveries(None)  # a reconnect: look anyway
    finally:
        await listener.close()
        await engine.dispose()
