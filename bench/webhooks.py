"""Does webhook delivery slow the resume path? Full HITL cycles with webhooks off and on.

A real `hitl serve` (API + embedded worker) on a scratch PostgreSQL database runs full cycles
over HTTP (POST /threads?wait=true -> POST resume?wait=true -> completed) with 16 clients, once
without a webhook URL and once with ``HITL_WEBHOOK_URL`` pointing at a local receiver (every
interrupt.created / interrupt.resolved / thread.completed event is then signed and POSTed by
the worker). The two settings alternate, ``--repeat`` times each, and medians are compared
(target: "on" within 10% of "off"). Afterwards every delivery must have arrived.

    python3 bench/webhooks.py [--seconds 10] [--repeat 3] [--clients 16]

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx

from bench import http_load, pg, server
from bench.engine import machine

GRAPHS = "approval=app.graphs.approval:graph"
TARGET_RATIO = 0.90


#: The receiver: a minimal keep-alive HTTP/1.1 server on asyncio streams, in its own process
#: (receivers live elsewhere; on this one machine it should cost as little CPU as possible).
#: POST: 204 and count; GET: the count.
RECEIVER = r"""
import asyncio

count = 0


async def handle(reader, writer):
    global count
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            if head.startswith(b"POST"):
                count += 1
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            else:
                body = str(count).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=256)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
"""


class Receiver:
    """A webhook receiver in its own process (as receivers are: elsewhere), answering 204."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hook"

    @property
    def received(self) -> int:
        return int(httpx.get(self.base, timeout=10).text)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def delivery_counts(db_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: int(r["count"]) for r in rows}


async def drained(db_url: str, seconds: float = 120.0) -> dict[str, int]:
    """Wait until no delivery is pending (or ``seconds`` passed); the final counts."""
    deadline = time.monotonic() + seconds
    while True:
        counts = await delivery_counts(db_url)
        if not counts.get("pending") or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.5)


async def one_round(
    args: argparse.Namespace, db_url: str, env: dict[str, str], label: str
) -> dict[str, Any]:
    log = Path(tempfile.gettempdir()) / f"hitl-bench-webhooks-{label}-{int(time.time())}.log"
    await asyncio.to_thread(server.migrate, db_url, env)
    with server.serve(db_url, env, [], log) as srv:
        cpu = cpu_seconds(srv.proc.pid)
        out = await http_load.run_cycles(
            srv.url, args.clients, "approval", None, seconds=args.seconds
        )
        if label == "on":
            out["deliveries"] = await drained(db_url)  # delivery work counts too
        used = cpu_seconds(srv.proc.pid) - cpu
        if out["cycles"]:
            out["server_cpu_ms_per_cycle"] = round(1000 * used / out["cycles"], 2)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def median(runs: list[dict[str, Any]], key: str = "cycles_per_second") -> float | None:
    values = [r[key] for r in runs if r.get(key)]
    return round(statistics.median(values), 2) if values else None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    receiver = Receiver()
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    base = {"HITL_GRAPHS": GRAPHS, "HITL_WORKER_CONCURRENCY": str(args.worker_concurrency)}
    settings = {
        "off": base,
        "on": {**base, "HITL_WEBHOOK_URL": receiver.url, "HITL_WEBHOOK_SECRET": "bench-secret"},
    }
    try:
        for i in range(args.repeat):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            for label in order:
                async with pg.scratch_database(args.admin_url, f"wh{label}") as db_url:
                    runs[label].append(await one_round(args, db_url, settings[label], label))
        received = receiver.received
    finally:
        receiver.close()
    off, on = median(runs["off"]), median(runs["on"])
    # At least created, resolved, completed per finished cycle (unfinished ones add some).
    expected = sum(r["cycles"] * 3 for r in runs["on"])
    delivered = sum(r.get("deliveries", {}).get("delivered", 0) for r in runs["on"])
    undelivered = sum(
        n for r in runs["on"] for k, n in r.get("deliveries", {}).items() if k != "delivered"
    )
    ratio = round(on / off, 3) if on and off else None
    return {
        "benchmark": "webhooks",
        "machine": machine(),
        "options": {k: getattr(args, k) for k in ("seconds", "repeat", "clients")},
        "cycles_per_second": {"webhooks_off": off, "webhooks_on": on},
        "ratio_on_over_off": ratio,
        # Less sensitive to other load on the machine than the rate: the server's own work.
        "server_cpu_ms_per_cycle": {
            "webhooks_off": median(runs["off"], "server_cpu_ms_per_cycle"),
            "webhooks_on": median(runs["on"], "server_cpu_ms_per_cycle"),
        },
        "target": {
            "ratio_at_least": TARGET_RATIO,
            "met": ratio is not None and ratio >= TARGET_RATIO,
        },
        "webhooks": {
            "events_expected": expected,
            "delivered": delivered,
            "not_delivered": undelivered,
            "received_by_receiver": received,
            "all_delivered": undelivered == 0 and received >= delivered >= expected,
        },
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--worker-concurrency", type=int, default=16)
    parser.add_argument("--admin-url", default=pg.admin_url())
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
