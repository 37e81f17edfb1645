"""Writers notify only while some process listens for every event (``event_listeners``): the
lease that says so, and an event stream that stays live on the notification alone."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.broadcaster import EventBroadcaster
from app.db.engine import create_engine
from app.services import event_interest
from app.services.event_interest import ListenerLease
from app.services.events import record_events
from tests.api.conftest import make_registry, make_settings

from .helpers import add_thread, event
from .sse import app_with_streams, serving, stream


async def rows(engine: AsyncEngine) -> dict[str, float]:
    """listener id -> seconds until its row expires."""
    async with engine.connect() as conn:
        found = await conn.execute(
            sa.text(
                "SELECT listener_id, extract(epoch FROM expires_at - now()) FROM event_listeners"
            )
        )
        return {listener_id: float(left) for listener_id, left in found}


async def until(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_lease_keeps_its_row_while_held_and_deletes_it_when_closed(
    pg_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_interest, "RECHECK_SECONDS", 0.05)
    told: list[float] = []
    lease = ListenerLease(pg_engine, "test", lambda: told.append(time.monotonic()), ttl_seconds=0.6)
    assert not lease.ready and not lease.held
    lease.hold()
    lease.hold()  # idempotent: one row, one task
    await until(lambda: lease.ready)
    first = await rows(pg_engine)
    assert list(first) == [lease.listener_id] and 0 < first[lease.listener_id] <= 0.6
    await until(lambda: len(told) == 2)  # once the row is in, and once more a moment later
    assert told[1] - told[0] >= 0.05
    await asyncio.sleep(0.5)  # refreshed every ttl/3: never expires while held
    assert (await rows(pg_engine))[lease.listener_id] > 0.2
    await lease.close()
    assert not lease.ready and not lease.held
    assert await rows(pg_engine) == {}


async def test_holding_again_at_once_keeps_a_row(pg_engine: AsyncEngine) -> None:
    """The stretch released deletes its own row late; the new stretch's row stays."""
    lease = ListenerLease(pg_engine, "test", lambda: None)
    lease.hold()
    await until(lambda: lease.ready)
    first = lease.listener_id
    lease.release()
    lease.hold()
    await until(lambda: lease.ready)
    second = lease.listener_id
    assert second != first
    await asyncio.sleep(0.3)  # the first stretch's delete has run by now
    assert list(await rows(pg_engine)) == [second]
    await lease.close()
    assert await rows(pg_engine) == {}


async def test_a_lease_clears_rows_its_dead_predecessors_left(pg_engine: AsyncEngine) -> None:
    async with pg_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO event_listeners VALUES "
                "('dead', 'test', now() - interval '2 minutes'), "
                "('recent', 'test', now() - interval '1 second')"
            )
        )
    lease = ListenerLease(pg_engine, "test", lambda: None)
    lease.hold()
    await until(lambda: lease.ready)
    assert set(await rows(pg_engine)) == {"recent", lease.listener_id}
    await lease.close()


async def test_a_live_stream_is_woken_by_the_notification_not_by_polling(pg_url: str) -> None:
    app = app_with_streams(make_settings(pg_url), embedded_worker=False, registry=make_registry())
    engine = create_engine(pg_url)
    try:
        async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            # A broadcaster that would poll only every 30 s.
            app.state.event_broadcaster = EventBroadcaster(
                app.state.services.engine, poll_seconds=30.0
            )
            await add_thread(engine, "t1")
            async with stream(client, "/interrupts/stream") as sse:
                for n in range(3):
                    # Right away, before the stream's listener row is in: caught by its look.
                    async with engine.begin() as conn:
                        await record_events(
                            conn, [event("t1", "interrupt.created", n=n)], global_webhook_url=None
                        )
                    began = time.monotonic()
                    got = await sse.next(timeout=10)
                    assert got is not None and got.data["data"]["n"] == n
                    assert time.monotonic() - began < 3.0
                assert [i.split("-")[0] for i in await rows(engine)] == ["event"]
        assert await rows(engine) == {}  # shutdown took the stream's row away
    finally:
        await engine.dispose()
