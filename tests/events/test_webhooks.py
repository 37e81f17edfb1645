"""Webhook delivery against a real local HTTP receiver: failures, downtime, signatures, dead."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import ConflictError, NotFoundError
from app.services.deliveries import DeliveryStore
from app.services.events import record_events
from app.worker.webhooks import WebhookDispatcher, backoff_seconds, sign, verify_signature

from .helpers import add_thread, all_events, deliveries, event
from .receiver import Receiver

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


async def record(engine: AsyncEngine, url: str, n: int, *, prefix: str = "t") -> None:
    for i in range(n):
        await add_thread(engine, f"{prefix}{i}")
        async with engine.begin() as conn:
            await record_events(
                conn,
                [event(f"{prefix}{i}", "interrupt.created", n=i)],
                global_webhook_url=url,
            )


def dispatcher(engine: AsyncEngine, **options: Any) -> WebhookDispatcher:
    values: dict[str, Any] = {
        "base_delay": 0.05,
        "max_delay": 0.3,
        "max_attempts": 60,
        "timeout": 2.0,
        "poll_seconds": 0.05,
    }
    values.update(options)
    return WebhookDispatcher(engine, SECRET, **values)


@contextlib.asynccontextmanager
async def running(*dispatchers: WebhookDispatcher) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(d.run()) for d in dispatchers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(predicate: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def statuses(engine: AsyncEngine) -> list[str]:
    return [r["status"] for r in await deliveries(engine)]


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"abc"}'
    header = sign(SECRET, body)
    assert header == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, body, header)
    assert not verify_signature(SECRET, body + b" ", header)
    assert not verify_signature("other", body, header)
    assert not verify_signature(SECRET, body, None)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    low = [backoff_seconds(n, base=1.0, cap=60.0, rng=lambda: 0.0) for n in range(1, 10)]
    high = [backoff_seconds(n, base=1.0, cap=60.0, rng=lambda: 1.0) for n in range(1, 10)]
    assert high[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert high[6:] == [60.0, 60.0, 60.0]
    assert all(lo == hi / 2 for lo, hi in zip(low, high, strict=True))
    assert backoff_seconds(10_000, base=1.0, cap=5.0) <= 5.0


async def test_every_event_arrives_through_failures_and_downtime(
    db_engine: AsyncEngine, receiver: Receiver
) -> None:
    receiver.fail_first = 3
    await record(db_engine, receiver.url, 6)
    async with running(dispatcher(db_engine)):
        await until(lambda: _received_some(receiver))
        receiver.stop()  # down for a while: connections refused
        await asyncio.sleep(0.8)
        await record(db_engine, receiver.url, 4, prefix="late")  # events while it is down
        await asyncio.sleep(0.4)
        receiver.start()
        await until(lambda: _all(db_engine, "delivered"))
    stored = {e.event_id: e for e in await all_events(db_engine)}
    assert len(stored) == 10
    assert set(receiver.event_ids()) == set(stored)  # every event, each with its unique id
    for got in receiver.received:
        body = orjson.loads(got.body)
        assert verify_signature(SECRET, got.body, got.headers["X-Hitl-Signature"])
        assert body["id"] == got.headers["X-Hitl-Event-Id"]
        assert body["type"] == got.headers["X-Hitl-Event"] == "interrupt.created"
        assert got.body == stored[body["id"]].body()
        assert got.headers["X-Hitl-Timestamp"].isdigit()
    rows = await deliveries(db_engine)
    assert max(r["attempts"] for r in rows) > 1  # some went through retries
    assert all(r["delivered_at"] is not None and r["last_error"] is None for r in rows)


async def _received_some(receiver: Receiver) -> bool:
    return len(receiver.received) >= 1


async def _all(engine: AsyncEngine, status: str) -> bool:
    return set(await statuses(engine)) == {status}


async def test_a_receiver_that_never_recovers_makes_the_delivery_dead_and_visible(
    db_engine: AsyncEngine, receiver: Receiver
) -> None:
    receiver.fail_first = 10**6
    receiver.fail_status = 503
    await record(db_engine, receiver.url, 1)
    async with running(dispatcher(db_engine, max_attempts=3)):
        await until(lambda: _all(db_engine, "dead"))
    store = DeliveryStore(db_engine)
    dead, next_cursor = await store.list(status="dead")
    assert next_cursor is None and len(dead) == 1
    item = dead[0]
    assert (item.attempts, item.last_status, item.next_attempt_at) == (3, 503, None)
    assert item.last_error is not None and "503" in item.last_error
    assert item.event_type == "interrupt.created" and item.thread_id == "t0"
    assert receiver.requests == 3

    # An operator fixes the receiver and retries the dead delivery.
    receiver.fail_first = 0
    await store.retry(item.id)
    with pytest.raises(ConflictError):
        await store.retry(item.id)  # no longer dead
    with pytest.raises(NotFoundError):
        await store.retry(10**9)
    async with running(dispatcher(db_engine)):
        await until(lambda: _all(db_engine, "delivered"))
    assert len(receiver.received) == 1


async def test_a_slow_receiver_is_cut_off_by_the_timeout(
    db_engine: AsyncEngine, receiver: Receiver
) -> None:
    receiver.delay = 1.0
    await record(db_engine, receiver.url, 1)
    sender = dispatcher(db_engine, timeout=0.2, max_attempts=1)
    assert await sender.run_once() == 1
    (row,) = await deliveries(db_engine)
    assert row["status"] == "dead" and "timed out" in row["last_error"]


async def test_concurrent_dispatchers_never_send_the_same_attempt_twice(
    db_engine: AsyncEngine, receiver: Receiver
) -> None:
    receiver.delay = 0.05
    await record(db_engine, receiver.url, 30)
    async with running(*(dispatcher(db_engine, concurrency=4) for _ in range(3))):
        await until(lambda: _all(db_engine, "delivered"))
    ids = receiver.event_ids()
    assert len(ids) == len(set(ids)) == 30  # all succeeded first time: exactly once each
    assert {r["attempts"] for r in await deliveries(db_engine)} == {1}


async def test_listing_pages_newest_first(db_engine: AsyncEngine, receiver: Receiver) -> None:
    await record(db_engine, receiver.url, 5)
    store = DeliveryStore(db_engine)
    first, cursor = await store.list(limit=3)
    assert cursor is not None and [d.id for d in first] == sorted(
        (d.id for d in first), reverse=True
    )
    rest, end = await store.list(limit=3, before=cursor)
    assert end is None and len(rest) == 2 and rest[0].id < first[-1].id
    assert [d.thread_id for d in (await store.list(thread_id="t2"))[0]] == ["t2"]
    assert (await store.list(status="delivered"))[0] == []
