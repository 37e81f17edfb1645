"""Test-side SSE: a real uvicorn server for the app, and a small text/event-stream reader."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import Depends, FastAPI

from app.api.app import create_app
from app.api.auth import require_api_key
from app.api.routes import streams, webhooks
from app.config import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def with_streams(app: FastAPI) -> FastAPI:
    """Make sure the app serves the stream and webhook routes (streams ahead of
    ``/interrupts/{id}``), whether or not ``create_app`` includes them yet."""
    paths = {getattr(r, "path", None) for r in app.router.routes}
    if "/interrupts/stream" not in paths:
        before = len(app.router.routes)
        app.include_router(streams.router, dependencies=[Depends(require_api_key)])
        added = app.router.routes[before:]
        del app.router.routes[before:]
        app.router.routes[0:0] = added
    if "/webhooks/deliveries" not in paths:
        app.include_router(webhooks.router, dependencies=[Depends(require_api_key)])
    return app


def app_with_streams(settings: Settings, **options: Any) -> FastAPI:
    return with_streams(create_app(settings, **options))


@contextlib.asynccontextmanager
async def serving(app: FastAPI, **options: Any) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) on a free port of 127.0.0.1; yields its base URL.

    ``options`` go to `uvicorn.Config` (``http=...``)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass
class Message:
    id: str | None
    event: str | None
    data: dict[str, Any]


class SseReader:
    """Reads one text/event-stream response message by message (comments/pings skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10.0) -> Message | None:
        """The next message, or None when the stream ended."""
        fields: dict[str, list[str]] = {}
        async with asyncio.timeout(timeout):
            async for line in self._lines:
                if not line:
                    if "data" in fields:
                        return Message(
                            fields.get("id", [None])[-1],  # type: ignore[list-item]
                            fields.get("event", [None])[-1],  # type: ignore[list-item]
                            orjson.loads("\n".join(fields["data"])),
                        )
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields.setdefault(name, []).append(value.removeprefix(" "))
        return None

    async def take(self, n: int, timeout: float = 10.0) -> list[Message]:
        out = []
        for _ in range(n):
            message = await self.next(timeout)
            assert message is not None, f"stream ended after {len(out)} of {n} messages"
            out.append(message)
        return out


@contextlib.asynccontextmanager
async def stream(client: httpx.AsyncClient, path: str, **kwargs: Any) -> AsyncIterator[SseReader]:
    async with client.stream("GET", path, **kwargs) as response:
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)
