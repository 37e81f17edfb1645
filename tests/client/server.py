"""A real ``hitl serve`` process on a free port, for tests that speak HTTP to the service.

Started as ``python -m app serve`` with settings in its environment (run from an empty directory,
so no ``.env`` of the checkout leaks in), and stopped with SIGTERM (then SIGKILL) afterwards.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.client.graphs import GRAPHS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running service: its base URL and its log (stdout and stderr)."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(server: Server, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"hitl serve exited with {server.proc.returncode}:\n{server.output()}"
            )
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"hitl serve did not answer in {seconds}s:\n{server.output()}")
        time.sleep(0.1)


@contextmanager
def serve(
    database_url: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """Run ``hitl serve`` (API and embedded worker) on ``database_url`` until the block ends."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"serve-{port}.log"
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HITL_")},
        "PYTHONPATH": python_path,
        "HITL_ENVIRONMENT": "test",
        "HITL_DATABASE_URL": database_url,
        "HITL_GRAPHS": GRAPHS,
        "HITL_POLL_SECONDS": "0.05",
        "HITL_WAIT_MAX_SECONDS": "10",
        "HITL_LOG_LEVEL": "WARNING",
        "HITL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        **(env or {}),
    }
    args = [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=workdir, env=environment, stdout=out, stderr=out)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_ready(server, 30.0)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
