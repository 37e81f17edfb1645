"""A real HTTP webhook receiver on 127.0.0.1 (http.server in a thread) whose behaviour tests set.

It can answer with a failure status for its first N requests, be slow, or be down altogether
(its socket closed, so connections are refused) and come back on the same port.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many senders at once: no refused connections
    daemon_threads = True


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Start with `start()`; `url` is where to POST. Thread-safe counters."""

    fail_first: int = 0
    fail_status: int = 500
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    requests: int = 0
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        if not self.port:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests += 1
                    failing = receiver.requests <= receiver.fail_first
                if receiver.delay:
                    time.sleep(receiver.delay)
                if failing:
                    self.send_response(receiver.fail_status)
                    self.end_headers()
                    self.wfile.write(b"not now")
                    return
                with receiver._lock:
                    receiver.received.append(Received(dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        server = _Server(("127.0.0.1", self.port), Handler)
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until `start()` again."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.headers["X-Hitl-Event-Id"] for r in self.received]
