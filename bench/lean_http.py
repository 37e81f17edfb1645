"""A lean HTTP/1.1 client for the cycle load: one kept-alive connection per client loop.

The load generator shares the machine's two cores with the server it measures, and every
millisecond of client CPU is one the server does not get. aiohttp spends about 0.2 ms of CPU per
request here (0.35-0.45 ms per cycle at 16 clients, a tenth of the whole machine's work per
cycle); this client sends a prebuilt request head and reads a Content-Length body straight off
an `asyncio.Protocol`, as load generators such as wrk do. It speaks only what the cycle needs:
POST a JSON body, read the status and body of a response with Content-Length.
``bench/service.py --client aiohttp`` measures with aiohttp instead.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

__all__ = ["LeanConnection", "LeanProtocolError"]


class LeanProtocolError(ConnectionError):
    """The server answered something this client does not read (no Content-Length, bad head)."""


class _Response(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if not head.startswith(b"http/1.1 ") or at < 0:
            waiter.set_exception(LeanProtocolError(f"unreadable response head: {head[:200]!r}"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        body = bytes(self.buffer[end + 4 : total])
        del self.buffer[:total]
        self.waiter = None
        waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = exc or ConnectionResetError("the server closed the connection")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.closed)


class LeanConnection:
    """One connection to ``base_url``; requests on it go one at a time."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._protocol: _Response | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` (JSON) to ``path``; the status code and the response body."""
        protocol = self._protocol
        if protocol is None or protocol.closed is not None:
            loop = asyncio.get_running_loop()
            _, protocol = await loop.create_connection(_Response, self.host, self.port)
            self._protocol = protocol
        assert protocol.transport is not None
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        protocol.waiter = waiter
        protocol.transport.write(
            b"POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s"
            % (path.encode(), self.host.encode(), self.port, len(body), body)
        )
        try:
            async with asyncio.timeout(self.timeout):
                return await waiter
        except BaseException:
            self.close()  # a response may still arrive: this connection is not reusable
            raise

    def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
