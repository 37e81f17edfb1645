"""Run the real service for a benchmark: `hitl migrate`, then `hitl serve` as a subprocess.

The process is started exactly as an operator would (console script and environment variables),
so what is measured includes uvicorn, the API, the embedded worker and the SQL round trips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def hitl_command() -> list[str]:
    """The `hitl` console script when installed, else ``python -m app``."""
    exe = shutil.which("hitl")
    return [exe] if exe else [sys.executable, "-m", "app"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(db_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HITL_")}
    env.update(
        HITL_DATABASE_URL=db_url,
        HITL_LOG_LEVEL="WARNING",
        # bench/ is importable by the server so it can host the benchmark's own graph.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env


def migrate(db_url: str, extra: dict[str, str]) -> None:
    proc = subprocess.run(
        [*hitl_command(), "migrate"],
        env=service_env(db_url, extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"hitl migrate failed ({proc.returncode}): {proc.stderr[-1500:]}")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children (uvicorn may fork), in MiB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            if p == pid:
                return None
    return round(total / 1024, 1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its direct children (uvicorn may fork)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    total = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def rss_mb(self) -> float | None:
        return rss_mb(self.proc.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its children so far."""
        return cpu_seconds(self.proc.pid)

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextlib.contextmanager
def serve(db_url: str, extra: dict[str, str], args: list[str], log: Path) -> Iterator[Server]:
    """`hitl serve` on a free port until ready (/readyz 200); SIGTERM (then SIGKILL) afterwards."""
    port = free_port()
    cmd = [*hitl_command(), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, env=service_env(db_url, extra), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hitl serve exited with {proc.returncode}: {server.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"hitl serve not ready after 60 s: {server.tail()}")
            time.sleep(0.2)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
