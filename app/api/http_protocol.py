"""uvicorn's HTTP/1.1 protocol (httptools), sending a response's header block with its body.

uvicorn writes the header block when the application sends ``http.response.start`` and the body
when it sends ``http.response.body``: two ``send()`` calls per response, and a client that reads
what has arrived is woken twice. Both messages of an ordinary response come in the same turn of
the event loop, so the header block is held until the body's write joins it, or until the end of
that turn (a streamed response's first chunk may come much later). Order and content are those
uvicorn writes; only the number of writes changes.

``hitl serve`` passes `HTTP_PROTOCOL` to uvicorn (``--http``), also to its worker processes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["HTTP_PROTOCOL", "HeaderHoldingTransport", "HttpToolsOneWrite"]

#: The import string uvicorn loads the protocol from (``uvicorn.run(..., http=...)``).
HTTP_PROTOCOL = "app.api.http_protocol:HttpToolsOneWrite"


class HeaderHoldingTransport:
    """A transport that keeps a header block back until the next write or the loop's next turn."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif data[:5] == b"HTTP/" and data[-4:] == b"\r\n\r\n":
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is held, if anything."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self._transport, name)


class HttpToolsOneWrite(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a `HeaderHoldingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeaderHoldingTransport(transport, self.loop)  # type: ignore[assignment]
