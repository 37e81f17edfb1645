"""`hitl serve`'s HTTP protocol: a response's header block goes out with its body, in one write;
everything else is uvicorn's own (a real server answers, streams and closes as before)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from app.api.app import create_app
from app.api.http_protocol import HTTP_PROTOCOL, HeaderHoldingTransport
from tests.api.conftest import make_registry, make_settings
from tests.events.sse import serving

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what is written (in memory) and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def test_the_header_block_waits_for_the_body() -> None:
    raw = RecordingTransport()
    held = HeaderHoldingTransport(raw, asyncio.get_running_loop())
    held.write(HEAD)
    assert raw.writes == []
    held.write(b"{}")
    assert raw.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert raw.writes == [HEAD + b"{}"]
    held.write(b"more")  # not a header block: straight through
    assert raw.writes[-1] == b"more"
    assert held.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's


async def test_a_header_block_alone_goes_out_at_the_end_of_the_loop_turn() -> None:
    raw = RecordingTransport()
    held = HeaderHoldingTransport(raw, asyncio.get_running_loop())
    held.write(HEAD)  # a stream's headers: its first chunk may come much later
    await asyncio.sleep(0)
    assert raw.writes == [HEAD]
    held.write(HEAD)
    held.close()  # closing writes what is held first
    assert raw.writes == [HEAD, HEAD] and raw.closed
    held.write(HEAD)
    await asyncio.sleep(0)
    assert raw.writes == [HEAD, HEAD]  # nothing is written to a closed transport


def _request(port: int, raw: bytes, *, until: bytes, seconds: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(raw)
        got = b""
        deadline = time.monotonic() + seconds
        while until not in got and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


async def test_a_real_server_answers_streams_and_closes_with_it(sqlite_url: str) -> None:
    app = create_app(make_settings(sqlite_url), embedded_worker=False, registry=make_registry())
    async with serving(app, http=HTTP_PROTOCOL) as url:
        port = int(url.rsplit(":", 1)[1])
        health = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        answer = await asyncio.to_thread(_request, port, health, until=b"}")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body.startswith(b"{")
        # A stream: its headers arrive before any event does.
        stream = b"GET /interrupts/stream HTTP/1.1\r\nhost: x\r\n\r\n"
        began = time.monotonic()
        headers = await asyncio.to_thread(_request, port, stream, until=b"\r\n\r\n")
        assert headers.startswith(b"HTTP/1.1 200") and b"text/event-stream" in headers
        assert time.monotonic() - began < 5
        # Bad input is still uvicorn's 400, written and closed.
        bad = await asyncio.to_thread(_request, port, b"NOT HTTP\r\n\r\n", until=b"\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400")
