"""The clients' SSE streams against a real ``hitl serve``: a thread's events, then the inbox's.

Every read is bounded: a stream that never delivers what the contract promises fails the test
with what it did deliver, instead of hanging it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest

from app.client import AsyncHitlClient, Event, HitlClient
from tests.client.server import Server

SECONDS = 20.0


def collect(events: Iterator[Event], stop: Callable[[Event], bool] | None = None) -> list[Event]:
    """Read ``events`` (in a helper thread) until it ends or ``stop`` says so, within SECONDS."""
    seen: list[Event] = []
    failure: list[BaseException] = []
    finished = threading.Event()

    def read() -> None:
        try:
            for event in events:
                seen.append(event)
                if stop is not None and stop(event):
                    break
        except BaseException as exc:  # reported below, not lost in the thread
            failure.append(exc)
        finally:
            finished.set()

    threading.Thread(target=read, daemon=True).start()
    if not finished.wait(SECONDS):
        pytest.fail(f"stream still open after {SECONDS}s; got {[e.event for e in seen]}")
    if failure:
        raise failure[0]
    return seen


def test_a_thread_stream_replays_to_the_end_and_resumes_after_an_id(
    hitl: HitlClient, run_id: str
) -> None:
    thread = hitl.start("approval", thread_id=f"{run_id}-s", wait=True)
    hitl.resume_interrupt(thread.interrupts[0].id, "yes")

    events = collect(hitl.stream(thread.thread_id))  # ends after the thread's final event
    types = [e.event for e in events]
    assert types[0] == "interrupt.created" and types[-1] == "thread.completed", types
    assert len({e.id for e in events}) == len(events) and all(e.id for e in events)
    first = events[0].data
    assert first["type"] == "interrupt.created"
    assert first["data"]["thread_id"] == thread.thread_id
    assert first["data"]["interrupt_id"] == thread.interrupts[0].id

    rest = collect(hitl.stream(thread.thread_id, last_event_id=events[0].id))
    assert [e.event for e in rest] == types[1:]
    assert collect(hitl.stream(thread.thread_id, last_event_id=events[-1].id)) == []  # 204


def test_the_inbox_stream_sees_a_new_question(hitl: HitlClient, run_id: str) -> None:
    before = hitl.start("approval", thread_id=f"{run_id}-a", wait=True)
    hitl.cancel(before.thread_id)
    mark = collect(hitl.stream(before.thread_id))[-1].id
    asked = hitl.start("numbers", thread_id=f"{run_id}-b", wait=True)

    def is_the_question(event: Event) -> bool:
        data = event.data["data"]
        return event.event == "interrupt.created" and data["thread_id"] == asked.thread_id

    events = collect(hitl.stream_interrupts(last_event_id=mark), is_the_question)
    assert events[-1].data["data"]["value"] == "How many items?"  # replayed from the database


async def test_the_async_client_streams_too(server: Server, run_id: str) -> None:
    async with AsyncHitlClient(server.url, timeout=30) as ahitl:
        thread = await ahitl.start("approval", thread_id=f"{run_id}-x", wait=True)
        await ahitl.resume(thread.thread_id, "ok")
        async with asyncio.timeout(SECONDS):
            events = [e async for e in ahitl.stream(thread.thread_id)]
        types = [e.event for e in events]
        assert types[0] == "interrupt.created" and types[-1] == "thread.completed", types
        async with asyncio.timeout(SECONDS):  # the inbox replays what came after the question
            async for event in ahitl.stream_interrupts(last_event_id=events[0].id):
                if event.data["data"]["thread_id"] == thread.thread_id:
                    assert event.event == types[1]
                    break
