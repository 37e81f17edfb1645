"""HTTP load against a running `hitl serve`: full human-in-the-loop cycles and list reads.

A cycle is what a product does for one decision: POST /threads?wait=true (the run starts and
pauses at its interrupt) then POST /threads/{id}/resume?wait=true (the answer is applied and the
run completes). ``wait=true`` makes each response arrive when the run has settled, so the
resume call's duration is the latency a person sees between answering and the thread finishing.

The load generator shares the machine's cores with the server it measures, so the cycles go
through `bench.lean_http` (a prebuilt request, a Content-Length body read off the socket) by
default: about a fifth of aiohttp's client CPU per request, which in turn was under a third of
httpx's. ``client="aiohttp"`` measures with aiohttp (C-accelerated parsing), as before. List reads
use aiohttp; readiness checks elsewhere in bench keep httpx: they are not in a timed loop.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.lean_http import LeanConnection

# What a request can fail with besides a wrong answer: transport errors, timeouts, bad JSON.
REQUEST_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError)

#: ``send(path, body)``: POST a JSON body to a path of the service; status and response body.
Send = Callable[[str, Any], Awaitable[tuple[int, bytes]]]
#: The load generators run_cycles and make_paused can use.
CLIENTS = ("lean", "aiohttp")


class CycleError(RuntimeError):
    """A request returned something other than the expected settled thread."""


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of values, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def expect(code: int, raw: bytes, status: str, what: str) -> dict[str, Any]:
    """The JSON body of a settled thread in ``status``; CycleError for anything else."""
    if code >= 300:
        text = raw[:300].decode(errors="replace")
        raise CycleError(f"{what}: HTTP {code}: {text}")
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        raise CycleError(f"{what}: not a thread: {raw[:300].decode(errors='replace')}")
    if body.get("status") != status:
        raise CycleError(f"{what}: thread status {body.get('status')!r}, expected {status!r}")
    return body


def session(clients: int) -> aiohttp.ClientSession:
    """At most ``clients`` kept-alive connections (one per client loop), 60 s per request."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=clients, limit_per_host=clients),
        timeout=aiohttp.ClientTimeout(total=60),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


@asynccontextmanager
async def senders(base_url: str, clients: int, kind: str) -> AsyncIterator[Callable[[], Send]]:
    """A factory of ``send`` functions, one per client loop (each its own kept-alive connection
    with the lean client; one shared aiohttp session of ``clients`` connections otherwise)."""
    if kind == "lean":
        connections: list[LeanConnection] = []

        def lean() -> Send:
            conn = LeanConnection(base_url)
            connections.append(conn)
            return lambda path, body: conn.post(path, orjson.dumps(body))

        try:
            yield lean
        finally:
            for conn in connections:
                conn.close()
        return
    if kind != "aiohttp":
        raise ValueError(f"unknown client {kind!r}; one of {CLIENTS}")
    async with session(clients) as client:

        async def post(path: str, body: Any) -> tuple[int, bytes]:
            async with client.post(base_url + path, json=body) as response:
                return response.status, await response.read()

        yield lambda: post


async def start_paused(send: Send, graph: str, payload: Any) -> tuple[str, float]:
    """Start a thread and wait until it is interrupted; its id and the call's seconds."""
    t0 = time.perf_counter()
    code, raw = await send("/threads?wait=true", {"graph": graph, "input": payload})
    body = expect(code, raw, "interrupted", "POST /threads")
    return str(body["thread_id"]), time.perf_counter() - t0


async def resume(send: Send, thread_id: str, answer: Any) -> float:
    """Answer the thread's one pending interrupt and wait until it completes; the call's seconds."""
    t0 = time.perf_counter()
    code, raw = await send(f"/threads/{thread_id}/resume?wait=true", {"value": answer})
    expect(code, raw, "completed", "POST /threads/{id}/resume")
    return time.perf_counter() - t0


@dataclass
class Tally:
    starts: list[float] = field(default_factory=list)
    resumes: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def failed(self, exc: Exception) -> None:
        self.error_count += 1
        if len(self.errors) < 3:
            self.errors.append(f"{type(exc).__name__}: {exc}"[:400])


async def run_cycles(
    base_url: str,
    clients: int,
    graph: str,
    payload: Any,
    *,
    seconds: float | None = None,
    cycles: int | None = None,
    client: str = "lean",
) -> dict[str, Any]:
    """``clients`` concurrent loops of full cycles, for ``seconds`` or until ``cycles`` are done."""
    tally = Tally()
    base_url = base_url.rstrip("/")
    deadline = time.perf_counter() + seconds if seconds else math.inf
    remaining = [cycles if cycles is not None else math.inf]

    async def client_loop(send: Send) -> None:
        while time.perf_counter() < deadline and remaining[0] > 0:
            remaining[0] -= 1
            try:
                thread_id, started = await start_paused(send, graph, payload)
                resumed = await resume(send, thread_id, "yes")
            except (CycleError, *REQUEST_ERRORS) as exc:
                tally.failed(exc)
                if tally.error_count >= 20 and not tally.resumes:
                    return  # nothing works: stop hammering
                continue
            tally.starts.append(started)
            tally.resumes.append(resumed)

    async with senders(base_url, clients, client) as new_send:
        t0 = time.perf_counter()
        await asyncio.gather(*(client_loop(new_send()) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    done = len(tally.resumes)
    out: dict[str, Any] = {
        "clients": clients,
        "client": client,
        "cycles": done,
        "seconds": round(elapsed, 2),
        "cycles_per_second": round(done / elapsed, 1) if elapsed else None,
        "start_to_interrupted_ms": {"p50": ms(percentile(tally.starts, 50)),
                                    "p99": ms(percentile(tally.starts, 99))},
        "resume_to_completed_ms": {"p50": ms(percentile(tally.resumes, 50)),
                                   "p90": ms(percentile(tally.resumes, 90)),
                                   "p99": ms(percentile(tally.resumes, 99))},
    }  # fmt: skip
    if tally.error_count:
        out["errors"] = tally.error_count
        out["first_errors"] = tally.errors
    return out


async def make_paused(
    base_url: str, graph: str, payload: Any, count: int, clients: int = 8, client: str = "lean"
) -> dict[str, Any]:
    """Create ``count`` threads that stop at their interrupt (for storage and memory checks)."""
    tally = Tally()
    base_url = base_url.rstrip("/")
    queue = list(range(count))

    async def loop(send: Send) -> None:
        while queue:
            queue.pop()
            try:
                _, took = await start_paused(send, graph, payload)
                tally.starts.append(took)
            except (CycleError, *REQUEST_ERRORS) as exc:
                tally.failed(exc)
                if tally.error_count >= 20 and not tally.starts:
                    return

    async with senders(base_url, clients, client) as new_send:
        await asyncio.gather(*(loop(new_send()) for _ in range(clients)))
    out: dict[str, Any] = {"paused": len(tally.starts)}
    if tally.error_count:
        out["errors"] = tally.error_count
        out["first_errors"] = tally.errors
    return out


async def read_latency(base_url: str, path: str, params: dict[str, str], n: int) -> dict[str, Any]:
    """p50/p90/p99 of ``n`` sequential GETs over one kept-alive connection, after a warm-up.

    Client-side time on localhost: server time plus well under a millisecond of HTTP overhead.
    A ``Server-Timing: app;dur=<ms>`` header, when the service sends one, is reported too.
    """
    times: list[float] = []
    server: list[float] = []
    items = None
    url = base_url.rstrip("/") + path
    async with session(1) as client:
        for i in range(n + 5):
            t0 = time.perf_counter()
            async with client.get(url, params=params) as response:
                raw = await response.read()
            took = time.perf_counter() - t0
            if response.status != 200:
                text = raw[:300].decode(errors="replace")
                return {"error": f"GET {path}: HTTP {response.status}: {text}"}
            if i < 5:
                continue  # warm-up: connection, plan cache
            times.append(took)
            timing = response.headers.get("server-timing", "")
            if "dur=" in timing:
                server.append(float(timing.split("dur=", 1)[1].split(",")[0].split(";")[0]) / 1000)
            if items is None:
                body = json.loads(raw)
                items = next((len(v) for v in body.values() if isinstance(v, list)), None)
    out: dict[str, Any] = {
        "requests": n,
        "items_on_page": items,
        "p50_ms": ms(percentile(times, 50)),
        "p90_ms": ms(percentile(times, 90)),
        "p99_ms": ms(percentile(times, 99)),
    }
    if server:
        out["server_p50_ms"] = ms(percentile(server, 50))
    return out
