"""Server-Sent Events: one thread's events, and the inbox's (every thread's) events.

Each SSE message is one event of the log: ``id`` is its cursor, ``event`` its type
(``interrupt.created``, ...), ``data`` the same JSON a webhook receives. A client that reconnects
with ``Last-Event-ID`` (browsers do it by themselves) or ``?after=`` first gets everything it
missed that is still in the database, in order, then live events. A thread's stream ends after
the thread completes, fails or is cancelled; connecting to such a thread with nothing new to
send answers 204, which tells a browser's EventSource to stop reconnecting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.broadcaster import EventBroadcaster
from app.api.deps import ServicesDep
from app.services.event_feed import latest_cursor, read_events
from app.services.events import EventCursor, EventType, StoredEvent
from app.services.views import TERMINAL

__all__ = ["get_broadcaster", "router", "stop_broadcaster"]

router = APIRouter(tags=["streams"])

#: Events after which a thread's stream ends.
FINAL_EVENTS = frozenset(
    {EventType.THREAD_COMPLETED, EventType.THREAD_FAILED, EventType.THREAD_CANCELLED}
)
#: Browsers reconnect after this many milliseconds.
RETRY_MS = 2000
_REPLAY_PAGE = 200

LastEventIdHeader = Annotated[
    str | None,
    Header(alias="Last-Event-ID", description="Resume after this event (sent by browsers)."),
]
AfterQuery = Annotated[
    str | None,
    Query(max_length=64, description="Resume after this event id (when no Last-Event-ID)."),
]


def get_broadcaster(app: FastAPI) -> EventBroadcaster:
    """This process's broadcaster, created on first use (``app.state.event_broadcaster``)."""
    broadcaster: EventBroadcaster | None = getattr(app.state, "event_broadcaster", None)
    if broadcaster is None:
        broadcaster = EventBroadcaster(app.state.services.engine)
        app.state.event_broadcaster = broadcaster
    return broadcaster


async def stop_broadcaster(app: FastAPI) -> None:
    """Stop the broadcaster, if one was started (the lifespan's shutdown)."""
    broadcaster: EventBroadcaster | None = getattr(app.state, "event_broadcaster", None)
    if broadcaster is not None:
        await broadcaster.stop()


def _message(event: StoredEvent) -> ServerSentEvent:
    return ServerSentEvent(
        data=event.body().decode(), event=event.type, id=str(event.cursor), retry=RETRY_MS
    )


async def _events(
    broadcaster: EventBroadcaster,
    after: EventCursor,
    *,
    thread_id: str | None = None,
    tenant: str | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """Replay from the database after ``after``, then live; again from the database if lagging."""
    engine = broadcaster.engine
    subscription = await broadcaster.subscribe(thread_id=thread_id, tenant=tenant)
    last = after
    try:
        while True:
            subscription.drain()
            while True:  # replay: whatever is in the database after ``last``
                async with engine.connect() as conn:
                    batch = await read_events(
                        conn,
                        last,
                        thread_id=thread_id,
                        tenant=tenant,
                        limit=_REPLAY_PAGE,
                        ignore_tx=broadcaster.ignore_tx,
                    )
                for event in batch.events:
                    last = event.cursor
                    yield _message(event)
                    if thread_id is not None and event.type in FINAL_EVENTS:
                        return
                if len(batch.events) < _REPLAY_PAGE:
                    break
            while not subscription.lagged:  # live
                event = await subscription.queue.get()
                if event.cursor <= last:
                    continue  # already replayed
                last = event.cursor
                yield _message(event)
                if thread_id is not None and event.type in FINAL_EVENTS:
                    return
    finally:
        broadcaster.unsubscribe(subscription)


def _response(content: AsyncIterator[ServerSentEvent]) -> EventSourceResponse:
    return EventSourceResponse(
        content,
        ping=15,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/threads/{thread_id}/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 204: {}, 404: {}},
)
async def stream_thread(
    thread_id: str,
    request: Request,
    services: ServicesDep,
    after: AfterQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    """The thread's events as Server-Sent Events, from its first (or after Last-Event-ID)."""
    thread = await services.threads.get(thread_id)  # 404 for an unknown thread
    cursor = EventCursor.parse(last_event_id if last_event_id is not None else after)
    broadcaster = get_broadcaster(request.app)
    if thread.status in TERMINAL:
        async with services.engine.connect() as conn:
            pending = await read_events(conn, cursor, thread_id=thread_id, limit=1)
        if not pending.events:
            return Response(status_code=204)  # finished, nothing new: stop reconnecting
    return _response(_events(broadcaster, cursor, thread_id=thread_id, tenant=services.tenant))


@router.get(
    "/interrupts/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_inbox(
    request: Request,
    services: ServicesDep,
    after: AfterQuery = None,
    last_event_id: LastEventIdHeader = None,
) -> Response:
    """Every thread's events as Server-Sent Events, live from now (or after Last-Event-ID).

    A tenant's key sees its own threads' events only."""
    text = last_event_id if last_event_id is not None else after
    broadcaster = get_broadcaster(request.app)
    if text is None:
        async with services.engine.connect() as conn:
            cursor = await latest_cursor(conn, ignore_tx=broadcaster.ignore_tx)
    else:
        cursor = EventCursor.parse(text)
    return _response(_events(broadcaster, cursor, tenant=services.tenant))
