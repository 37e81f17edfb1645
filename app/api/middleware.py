"""Pure ASGI middleware: request ids, request metrics, the last-resort 500, and the body limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses and contextvars behave, and so an
oversized body is refused before any of it reaches a route (413, nothing changed).
"""

from __future__ import annotations

import logging
import os
import re
import time

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.context import reset_request_id, set_request_id
from app.api.metrics import ApiMetrics
from app.api.problems import handle_unexpected, problem

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_KEY = REQUEST_ID_HEADER.encode()
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class RequestContextMiddleware:
    """Gives every request an id (``X-Request-ID``, echoed), times it (``Server-Timing``, and
    the request metrics), and never lets a 500 leak.

    An exception that escapes the app is logged and answered with a problem body (when no response
    has started yet), so clients always get problem+json and servers never print bare tracebacks.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_KEY:
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _SAFE_ID.match(incoming) else os.urandom(16).hex()
        token = set_request_id(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                # The time spent here until the response starts (W3C Server-Timing): what a
                # client can tell apart from its own and the network's share.
                took = (time.perf_counter() - started) * 1000
                headers.append((b"server-timing", b"app;dur=%.2f" % took))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if response_started:
                raise
            response = await handle_unexpected(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            self.metrics.observe_request(
                scope.get("method", ""), template, status, time.perf_counter() - started
            )
            reset_request_id(token)


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` with 413 before the app reads them.

    A declared ``Content-Length`` is checked up front; a body without one (chunked) is read here,
    counting, and replayed to the app only when it fits.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await self._refuse(scope, receive, send, 400, "Content-Length is not a number.")
                return
            if length > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"The request body exceeds the limit of {self.max_bytes} bytes."
        await self._refuse(scope, receive, send, 413, detail, {"max_bytes": self.max_bytes})

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        detail: str,
        extra: dict[str, int] | None = None,
    ) -> None:
        code = "payload_too_large" if status == 413 else "bad_request"
        response = problem(Request(scope), status, code, detail, extra=extra)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
