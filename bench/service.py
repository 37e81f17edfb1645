"""Service speed on PostgreSQL: a real `hitl serve` against LangGraph's AsyncPostgresSaver and pgbench.

Everything in one run, on scratch databases created and dropped here (admin URL from
TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres):

  baseline   pgbench one-row INSERT commits/s with 8 clients; LangGraph's AsyncPostgresSaver as a
             library doing interrupt round trips (seed approval graph) at 16 and at 1 concurrency
  cycles     full HITL cycles over HTTP (POST /threads?wait=true -> POST resume?wait=true ->
             completed) with 16 clients, cycles/s, commits per cycle (pg_stat_database), then
             resume->completed latency with 1 and 16 clients (measurements interleaved with the
             LangGraph ones, --repeat times, medians reported)
  storage    bytes per thread paused in a start -> ask -> act graph, hitl vs LangGraph's saver
  lists      GET /interrupts and GET /threads?status=interrupted, first page, with --threads
             threads stored (5% interrupted, inserted with generate_series)
  memory     resident memory of the serve process with few and with --threads stored threads

    python3 bench/service.py [--quick] [--threads 100000] [--seconds 10] [--repeat 3]
                             [--only storage|rates|lists ...] [--client lean|aiohttp]
                             [--serve-workers N]

`hitl serve` runs with ``--workers`` one per core (--serve-workers), as docs/operations.md
advises on PostgreSQL: each process has its embedded worker. The load generator runs on the same
cores as the server: the cycles use `bench/lean_http.py`
by default (--client aiohttp for aiohttp), and each 16-client round reports the CPU per cycle
of the serving process and of the load generator.

Prints one JSON document; a phase that fails reports {"error": ...} and the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bulk, http_load, langgraph_pg, pg, server, wal
from bench.engine import machine
from bench.graphs import ASK_ACT_INPUT

SETTLE = pg.STATS_SETTLE_SECONDS
PHASES = ("storage", "rates", "lists")
GRAPHS = "approval=app.graphs.approval:graph,bench_ask_act=bench.graphs:hitl_ask_act"


async def guarded(what: str, step: Callable[[], Awaitable[Any]]) -> Any:
    """Run one phase; on failure return an error entry instead of ending the benchmark."""
    try:
        return await step()
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
        print(f"[bench] {what} failed: {exc!r}{where}", file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}{where}"[:1500]}


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            values.append(float(value))
    return round(statistics.median(values), 2) if values else None


async def hitl_cycles(
    admin: str, db_url: str, srv: server.Server, args: argparse.Namespace, idle_rate: float
) -> Any:
    """16-client cycles with the database's commit counters and WAL position around them, and
    the CPU the serving process and this load generator spent per cycle."""
    before = await pg.counters(admin, db_url)
    start = await wal.mark(admin, db_url)
    cpu_before = (srv.cpu_seconds(), process_cpu_seconds())
    out = await http_load.run_cycles(
        srv.url, 16, "approval", None, seconds=args.seconds, client=args.client
    )
    cpu_after = (srv.cpu_seconds(), process_cpu_seconds())
    writes = await wal.count_since(start)
    delta = await pg.counters(admin, db_url) - before
    cycles = out["cycles"]
    if cycles:
        serve_cpu, client_cpu = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
        out["serve_cpu_ms_per_cycle"] = round(serve_cpu * 1000 / cycles, 2)
        out["client_cpu_ms_per_cycle"] = round(client_cpu * 1000 / cycles, 2)
        raw = delta.commits / cycles
        # Every COMMIT, read-only ones included (pg_stat_database.xact_commit) ...
        out["all_commits_per_cycle_raw"] = round(raw, 2)
        # ... minus the idle background (polls, heartbeats, pool pings) over the same window.
        window = out["seconds"] + SETTLE
        out["all_commits_per_cycle"] = round(raw - idle_rate * window / cycles, 2)
        out["rollbacks_per_cycle"] = round(delta.rollbacks / cycles, 2)
        out["rows_written_per_cycle"] = round(
            (delta.inserted + delta.updated + delta.deleted) / cycles, 2
        )
        out["write_commits_per_cycle"] = per(writes, "write_commits", cycles)
    return out


def per(counts: dict[str, int] | str, key: str, n: int) -> float | str:
    """counts[key] / n, or the reason why counting was not possible."""
    return counts if isinstance(counts, str) else round(counts[key] / n, 2)


async def idle_commit_rate(admin: str, db_url: str, seconds: float) -> float:
    before = await pg.counters(admin, db_url)
    await asyncio.sleep(seconds)
    delta = await pg.counters(admin, db_url, settle=SETTLE) - before
    return delta.commits / (seconds + SETTLE)


def process_cpu_seconds() -> float:
    """CPU time of this process (the load generator) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def hitl_storage(db_url: str, base: str, threads: int, client: str) -> dict[str, Any]:
    before = await pg.table_sizes(db_url)
    made = await http_load.make_paused(base, "bench_ask_act", ASK_ACT_INPUT, threads, client=client)
    if made.get("paused", 0) == 0:
        return {"error": f"no thread paused: {made}"}
    sizes = await pg.storage_per_thread(db_url, before, made["paused"], skip={"alembic_version"})
    return {**sizes, **made}


async def lists(db_url: str, base: str, threads: int, requests: int) -> dict[str, Any]:
    inserted = await bulk.insert_threads(db_url, threads, 0.05)
    return {
        "stored": inserted,
        "GET /interrupts": await http_load.read_latency(base, "/interrupts", {}, requests),
        "GET /threads?status=interrupted": await http_load.read_latency(
            base, "/threads", {"status": "interrupted"}, requests
        ),
    }


async def rates(
    args: argparse.Namespace, admin: str, lg_url: str, db_url: str, srv: server.Server
) -> tuple[dict[str, Any], dict[int, list[Any]], dict[int, list[Any]]]:
    """Warm-up, idle commit rate, then --repeat interleaved rounds of hitl and LangGraph."""
    out: dict[str, Any] = {}
    lg_runs: dict[int, list[Any]] = {16: [], 1: []}
    hitl_runs: dict[int, list[Any]] = {16: [], 1: []}
    base, client = srv.url, args.client
    warm = await guarded(
        "warm-up",
        lambda: http_load.run_cycles(base, 16, "approval", None, cycles=64, client=client),
    )
    out["warm_up"] = {k: warm.get(k) for k in ("cycles", "errors", "first_errors", "error")}
    idle = await guarded("idle", lambda: idle_commit_rate(admin, db_url, 5.0))
    idle_rate = idle if isinstance(idle, float) else 0.0
    out["idle_commits_per_second"] = round(idle_rate, 2) if isinstance(idle, float) else idle
    for _ in range(args.repeat):  # interleaved with the baseline: same machine state
        # What autovacuum would have done since the last round (it is off on this server):
        # hitl updates and deletes rows, so without it every round starts on more bloat.
        vacuumed = await guarded("vacuum", lambda: vacuum_both(db_url, lg_url))
        await langgraph_round(args, admin, lg_url, lg_runs, 16)
        hitl_runs[16].append(await guarded("hitl 16", lambda: hitl_cycles(
            admin, db_url, srv, args, idle_rate)))  # fmt: skip
        hitl_runs[16][-1]["vacuum_seconds_before"] = vacuumed
        await langgraph_round(args, admin, lg_url, lg_runs, 1)
        hitl_runs[1].append(await guarded("hitl 1", lambda: http_load.run_cycles(
            base, 1, "approval", None, seconds=args.seconds / 2, client=client)))  # fmt: skip
    return out, lg_runs, hitl_runs


async def vacuum_both(db_url: str, lg_url: str) -> dict[str, float]:
    """VACUUM (ANALYZE) hitl's database and the baseline's, outside the timed windows; the
    seconds each took (what autovacuum would have spent meanwhile)."""
    took = {}
    for name, url in (("hitl", db_url), ("langgraph", lg_url)):
        t0 = time.perf_counter()
        await pg.vacuum(url)
        took[name] = round(time.perf_counter() - t0, 3)
    return took


async def langgraph_round(
    args: argparse.Namespace, admin: str, lg_url: str, runs: dict[int, list[Any]], clients: int
) -> None:
    seconds = args.seconds if clients > 1 else args.seconds / 2
    runs[clients].append(await guarded(f"langgraph {clients}", lambda: langgraph_pg.round_trips(
        admin, lg_url, clients, seconds=seconds)))  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    admin, only = args.admin_url, set(args.only or PHASES)
    version = await guarded("version", lambda: pg.server_version(admin))
    doc: dict[str, Any] = {
        "benchmark": "service",
        "machine": {**machine(), "postgresql": version},
        "options": {
            k: getattr(args, k)
            for k in (
                "quick",
                "only",
                "seconds",
                "repeat",
                "threads",
                "paused",
                "worker_concurrency",
                "serve_workers",
                "serve_arg",
                "client",
            )
        },
        "baseline": {},
    }
    hitl: dict[str, Any] = {}
    doc["hitl"] = hitl
    lg_runs: dict[int, list[Any]] = {16: [], 1: []}
    hitl_runs: dict[int, list[Any]] = {16: [], 1: []}
    if "rates" in only:
        doc["baseline"]["pgbench_insert_8_clients"] = await guarded(
            "pgbench", lambda: pg.pgbench_insert_rate(admin, 8, args.seconds)
        )
    if "storage" in only:
        async with pg.scratch_database(admin, "lgstore") as lg_store_url:
            doc["baseline"]["langgraph_storage"] = await guarded(
                "langgraph storage", lambda: langgraph_pg.storage(lg_store_url, args.paused)
            )
    async with (
        pg.scratch_database(admin, "lg") as lg_url,
        pg.scratch_database(admin, "hitl") as db_url,
    ):
        env = {"HITL_GRAPHS": GRAPHS, "HITL_WORKER_CONCURRENCY": str(args.worker_concurrency)}
        log = Path(tempfile.gettempdir()) / f"hitl-bench-serve-{int(time.time())}.log"
        try:
            await asyncio.to_thread(server.migrate, db_url, env)
            serve_args = ["--workers", str(args.serve_workers), *(args.serve_arg or [])]
            with server.serve(db_url, env, serve_args, log) as srv:
                hitl["server_log"] = str(log)
                hitl["rss_mb_started"] = srv.rss_mb()
                if "storage" in only:
                    hitl["storage"] = await guarded(
                        "hitl storage",
                        lambda: hitl_storage(db_url, srv.url, args.paused, args.client),
                    )
                if "rates" in only:
                    out, lg_runs, hitl_runs = await rates(args, admin, lg_url, db_url, srv)
                    hitl.update(out)
                hitl["rss_mb_before_bulk"] = srv.rss_mb()
                if "lists" in only:
                    hitl["lists"] = await guarded(
                        "lists", lambda: lists(db_url, srv.url, args.threads, args.list_requests)
                    )
                    hitl["rss_mb_after_bulk"] = srv.rss_mb()
        except Exception as exc:
            hitl["error"] = f"{type(exc).__name__}: {exc}"[:3000]
        if "rates" in only and not lg_runs[16]:  # hitl could not run: still measure the baseline
            for _ in range(args.repeat):
                await langgraph_round(args, admin, lg_url, lg_runs, 16)
                await langgraph_round(args, admin, lg_url, lg_runs, 1)
    doc["baseline"]["langgraph_16_runs"] = lg_runs[16]
    doc["baseline"]["langgraph_1_runs"] = lg_runs[1]
    hitl["cycles_16_runs"] = hitl_runs[16]
    hitl["cycles_1_runs"] = hitl_runs[1]
    doc["targets"] = targets(doc, lg_runs, hitl_runs)
    return doc


def check(
    name: str, value: float | None, limit: float | None, op: str, **extra: Any
) -> dict[str, Any]:
    target = None if limit is None else f"{op} {limit}"
    entry: dict[str, Any] = {"name": name, "value": value, "target": target, **extra}
    if limit is None:
        entry["status"] = "info"
    elif value is None:
        entry["status"] = "not_measured"
    else:
        ok = value >= limit if op == ">=" else value <= limit if op == "<=" else value < limit
        entry["status"] = "pass" if ok else "fail"
    return entry


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def targets(
    doc: dict[str, Any], lg: dict[int, list[dict[str, Any]]], hitl: dict[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    rate = median_of(hitl[16], "cycles_per_second")
    lg16 = median_of(lg[16], "round_trips_per_second")
    lg1 = median_of(lg[1], "round_trips_per_second")
    pgbench = doc["baseline"].get("pgbench_insert_8_clients", {}).get("commits_per_second")
    store = doc["hitl"].get("storage", {})
    lg_store = doc["baseline"].get("langgraph_storage", {})
    lst = doc["hitl"].get("lists", {})
    rss_few, rss_many = doc["hitl"].get("rss_mb_before_bulk"), doc["hitl"].get("rss_mb_after_bulk")
    return [
        check("cycles/s over HTTP (16 clients) / LangGraph round trips/s (16)", ratio(rate, lg16),
              2.0, ">=", hitl_cycles_per_second=rate, langgraph_round_trips_per_second=lg16,
              langgraph_1_round_trips_per_second=lg1),
        check("write transactions committed per cycle (WAL)",
              median_of(hitl[16], "write_commits_per_cycle"), 6, "<=",
              all_commits_per_cycle=median_of(hitl[16], "all_commits_per_cycle"),
              langgraph_write_commits_per_round_trip=median_of(
                  lg[16], "write_commits_per_round_trip"),
              langgraph_all_commits_per_round_trip=median_of(lg[16], "all_commits_per_round_trip")),
        check("cycles/s as a fraction of pgbench commits/s (informational)", ratio(rate, pgbench),
              None, "info", pgbench_commits_per_second=pgbench),
        check("resume->completed p50 ms, 1 client",
              median_of(hitl[1], "resume_to_completed_ms", "p50"), 15, "<",
              langgraph_resume_p50_ms=median_of(lg[1], "resume_ms", "p50")),
        check("resume->completed p99 ms, 16 clients",
              median_of(hitl[16], "resume_to_completed_ms", "p99"), 60, "<",
              langgraph_resume_p99_ms=median_of(lg[16], "resume_ms", "p99")),
        check("GET /interrupts p50 ms (server time, Server-Timing)",
              lst.get("GET /interrupts", {}).get("server_p50_ms"), 5, "<",
              client_p50_ms=lst.get("GET /interrupts", {}).get("p50_ms"),
              stored_threads=lst.get("stored", {}).get("threads_total")),
        check("GET /threads?status=interrupted p50 ms (server time, Server-Timing)",
              lst.get("GET /threads?status=interrupted", {}).get("server_p50_ms"), 5, "<",
              client_p50_ms=lst.get("GET /threads?status=interrupted", {}).get("p50_ms"),
              stored_threads=lst.get("stored", {}).get("threads_total")),
        check("disk bytes per paused thread / LangGraph's (after VACUUM FULL)",
              ratio(store.get("disk_bytes_per_thread"), lg_store.get("disk_bytes_per_thread")),
              0.5, "<=", hitl_bytes=store.get("disk_bytes_per_thread"),
              langgraph_bytes=lg_store.get("disk_bytes_per_thread"),
              as_written_ratio=ratio(store.get("as_written_disk_bytes_per_thread"),
                                     lg_store.get("as_written_disk_bytes_per_thread")),
              row_bytes_ratio=ratio(store.get("row_bytes_per_thread"),
                                    lg_store.get("row_bytes_per_thread"))),
        check("serve RSS MiB with many stored threads / with few (10% slack)",
              ratio(rss_many, rss_few), 1.1, "<=", rss_mb_few=rss_few, rss_mb_many=rss_many),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short run (smoke test)")
    parser.add_argument("--threads", type=int, default=100_000, help="threads stored for lists")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each rate run")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rate runs (median)")
    parser.add_argument("--paused", type=int, default=2000, help="paused threads for storage")
    parser.add_argument("--list-requests", type=int, default=200)
    parser.add_argument("--worker-concurrency", type=int, default=16)
    parser.add_argument(
        "--serve-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="`hitl serve --workers`: server processes, each with its embedded worker "
        "(default: one per core, as docs/operations.md advises on PostgreSQL)",
    )
    parser.add_argument("--serve-arg", action="append", help="extra `hitl serve` argument")
    parser.add_argument("--admin-url", default=pg.admin_url())
    parser.add_argument("--only", action="append", choices=PHASES, help="run only these phases")
    parser.add_argument(
        "--client",
        choices=http_load.CLIENTS,
        default="lean",
        help="load generator for the cycles (lean: bench/lean_http.py; aiohttp)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.threads = min(args.threads, 20_000)
        args.seconds, args.repeat, args.paused, args.list_requests = 3.0, 1, 200, 30
    started = time.perf_counter()
    doc = asyncio.run(run(args))
    doc["seconds"] = round(time.perf_counter() - started, 1)
    json.dump(doc, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
