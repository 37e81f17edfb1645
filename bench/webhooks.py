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
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench import http_load, pg, server
from bench.engine import machine

GRAPHS = "approval=app.graphs.approval:graph"
TARGET_RATIO = 0.90


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # many senders at once: no refused connections
    daemon_threads = True


class Receiver:
    """A webhook receiver on 127.0.0.1 answering 204 to every POST; counts what it got."""

    def __init__(self) -> None:
        self.received = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    outer.received += 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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
        out = await http_load.run_cycles(
            srv.url, args.clients, "approval", None, seconds=args.seconds
        )
        if label == "on":
            out["deliveries"] = await drained(db_url)
    return out


def median(runs: list[dict[str, Any]]) -> float | None:
    values = [r["cycles_per_second"] for r in runs if r.get("cycles_per_second")]
    return round(statistics.median(values), 1) if values else None


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
        "target": {
            "ratio_at_least": TARGET_RATIO,
            "met": ratio is not None and ratio >= TARGET_RATIO,
        },
        "webhooks": {
            "events_expected": expected,
            "delivered": delivered,
            "not_delivered": undelivered,
            "received_by_receiver": receiver.received,
            "all_delivered": undelivered == 0 and receiver.received >= delivered >= expected,
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
