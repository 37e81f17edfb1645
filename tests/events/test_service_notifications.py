"""Notifications through the whole service: a real server with its worker, a real receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from app.api.app import create_app
from app.worker.webhooks import verify_signature
from tests.api.conftest import make_registry, make_settings

from .receiver import Receiver
from .sse import serving, stream

SECRET = "service-secret"


@pytest.fixture
def receiver() -> Any:
    r = Receiver(fail_first=1).start()  # the first delivery fails: retried
    yield r
    r.stop()


@pytest.fixture
async def client(db_url: str, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        db_url,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
        public_url="http://hitl.example",
    )
    app = create_app(settings, embedded_worker=True, registry=make_registry())
    async with serving(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as c:
        yield c


async def test_a_paused_thread_is_announced_answered_and_finished(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    async with stream(client, "/interrupts/stream") as inbox:
        started = await client.post(
            "/threads", params={"wait": "true"}, json={"graph": "approval", "thread_id": "t1"}
        )
        assert started.status_code == 201 and started.json()["status"] == "interrupted"
        iid = started.json()["interrupts"][0]["id"]
        created = await inbox.next()
        assert created is not None and created.event == "interrupt.created"
        assert created.data["data"]["interrupt_id"] == iid
        assert created.data["data"]["links"]["resume"] == (
            f"http://hitl.example/interrupts/{iid}/resume"
        )
        resumed = await client.post(
            "/threads/t1/resume", params={"wait": "true"}, json={"value": "yes"}
        )
        assert resumed.status_code == 202 and resumed.json()["status"] == "completed"
        rest = await inbox.take(2)
    kinds = ["interrupt.created"] + [m.event for m in rest]
    assert kinds == ["interrupt.created", "interrupt.resolved", "thread.completed"]
    sse_ids = [created.data["id"]] + [m.data["id"] for m in rest]

    deadline = time.monotonic() + 20
    while len(set(receiver.event_ids())) < 3:
        assert time.monotonic() < deadline, receiver.event_ids()
        await asyncio.sleep(0.1)
    assert sorted(set(receiver.event_ids())) == sorted(sse_ids)  # the same events, same ids
    assert receiver.requests >= 4  # one failed and was retried
    for got in receiver.received:
        assert verify_signature(SECRET, got.body, got.headers["X-Hitl-Signature"])
        assert orjson.loads(got.body)["data"]["thread_id"] == "t1"

    # The receiver has the events before the dispatcher records its outcome: wait for that write.
    while True:
        listed = (await client.get("/webhooks/deliveries")).json()["deliveries"]
        if {d["status"] for d in listed} == {"delivered"}:
            break
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.1)
    assert len(listed) == 3

    async with stream(client, "/threads/t1/stream") as history:
        replay = await history.take(3)
        assert await history.next() is None  # completed: the thread's stream ends
    assert [m.event for m in replay] == kinds
