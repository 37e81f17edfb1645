"""A real ``hitl serve`` process on a free port, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 40.0
#: The checkout, importable by the subprocesses whether or not the package is installed.
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def hitl_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    env.update(
        {
            "HITL_DATABASE_URL": db_url,
            "HITL_POLL_SECONDS": "0.1",
            "HITL_LEASE_SECONDS": "5",
            "HITL_SHUTDOWN_GRACE_SECONDS": "3",
            "HITL_WAIT_MAX_SECONDS": "15",
            "HITL_LOG_LEVEL": "WARNING",
            "COLUMNS": "250",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    env.update(extra)
    return env


def hitl(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a ``hitl`` command (as ``python -m app``) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    cwd: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_server(db_url: str, cwd: Path, *serve_args: str, **env_extra: str) -> Server:
    port = free_port()
    env = hitl_env(db_url, HITL_PUBLIC_URL=f"http://127.0.0.1:{port}", **env_extra)
    log = cwd / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port), *serve_args],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, env, cwd, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hitl serve exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.terminate()
    raise AssertionError(f"hitl serve did not become ready:\n{server.output()}")


@pytest.fixture
def serve(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start ``hitl serve`` processes on ``db_url``; all are stopped (SIGTERM) afterwards."""
    servers: list[Server] = []

    def factory(*serve_args: str, **env_extra: str) -> Server:
        server = start_server(db_url, tmp_path, *serve_args, **env_extra)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.terminate()


@pytest.fixture
def server(serve: Callable[..., Server]) -> Server:
    return serve()
