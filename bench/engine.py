"""Engine speed: hitl's `app.graph` against LangGraph 1.2, measured in the same process and run.

Why one run for both: the machine is shared and noisy, so absolute numbers drift; the ratio
hitl/LangGraph of medians taken from interleaved runs is what the targets in
docs/benchmarks.md are about.

Scenarios (each timed per invocation, N invocations per run, the median over --runs runs):
  linear        5-node linear graph, sync ``invoke`` on a new thread each time
  interrupt     start -> interrupt() -> resume with Command(resume=...) -> end (sync)
  fanout        10-way Send fan-out into async nodes with an operator.add reducer (``ainvoke``)
each with an InMemorySaver and again without a checkpointer (``*_nocp``).

Prints one JSON document on stdout. A scenario that cannot run (hitl's engine missing a piece,
a wrong result) reports ``{"error": ...}`` instead of stopping the others.

    python3 bench/engine.py [--runs 5] [--n 2000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import operator
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from typing_extensions import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FANOUT_WIDTH = 10
LINEAR_NODES = 5


@dataclass(frozen=True)
class Api:
    """The handful of names a scenario needs, from either library."""

    name: str
    StateGraph: Any
    START: str
    END: str
    interrupt: Callable[[Any], Any]
    Command: Any
    Send: Any
    InMemorySaver: Any  # or the import error's text, so scenarios without a saver still run

    def saver(self) -> Any:
        if isinstance(self.InMemorySaver, str):
            raise RuntimeError(self.InMemorySaver)
        return self.InMemorySaver()


def load_hitl() -> Api:
    from app.graph import END, START, Command, Send, StateGraph, interrupt

    saver: Any
    try:
        from app.checkpoint.memory import InMemorySaver as saver
    except ImportError as exc:
        saver = f"InMemorySaver import failed: {exc}"
    return Api("hitl", StateGraph, START, END, interrupt, Command, Send, saver)


def load_langgraph() -> Api:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import Command, Send, interrupt

    return Api("langgraph", StateGraph, START, END, interrupt, Command, Send, InMemorySaver)


# --------------------------------------------------------------------------- graphs


class LinearState(TypedDict):
    x: int


class AskState(TypedDict):
    question: str
    answer: str


class FanState(TypedDict):
    items: Annotated[list[int], operator.add]


def build_linear(api: Api, checkpointer: bool) -> Any:
    def step(state: LinearState) -> dict[str, int]:
        return {"x": state["x"] + 1}

    g = api.StateGraph(LinearState)
    names = [f"n{i}" for i in range(LINEAR_NODES)]
    for name in names:
        g.add_node(name, step)
    g.add_edge(api.START, names[0])
    for a, b in itertools.pairwise(names):
        g.add_edge(a, b)
    g.add_edge(names[-1], api.END)
    return g.compile(checkpointer=api.saver() if checkpointer else None)


def build_interrupt(api: Api, checkpointer: bool) -> Any:
    def ask(state: AskState) -> dict[str, str]:
        return {"answer": api.interrupt(state["question"])}

    def act(state: AskState) -> dict[str, str]:
        return {"answer": state["answer"] + "!"}

    g = api.StateGraph(AskState)
    g.add_node("ask", ask)
    g.add_node("act", act)
    g.add_edge(api.START, "ask")
    g.add_edge("ask", "act")
    g.add_edge("act", api.END)
    return g.compile(checkpointer=api.saver() if checkpointer else None)


def build_fanout(api: Api, checkpointer: bool) -> Any:
    async def work(n: int) -> dict[str, list[int]]:
        return {"items": [n]}

    def fan(state: FanState) -> list[Any]:
        return [api.Send("work", i) for i in range(FANOUT_WIDTH)]

    g = api.StateGraph(FanState)
    g.add_node("work", work)
    g.add_conditional_edges(api.START, fan, ["work"])
    g.add_edge("work", api.END)
    return g.compile(checkpointer=api.saver() if checkpointer else None)


# --------------------------------------------------------------------------- one invocation


def cfg(i: int, checkpointer: bool) -> dict[str, Any] | None:
    return {"configurable": {"thread_id": f"t{i}"}} if checkpointer else None


def run_linear(graph: Any, api: Api, n: int, checkpointer: bool, offset: int) -> None:
    for i in range(offset, offset + n):
        out = graph.invoke({"x": 0}, cfg(i, checkpointer))
        if out["x"] != LINEAR_NODES:
            raise AssertionError(f"{api.name}: linear result {out!r}")


def run_interrupt(graph: Any, api: Api, n: int, checkpointer: bool, offset: int) -> None:
    for i in range(offset, offset + n):
        c = cfg(i, checkpointer)
        paused = graph.invoke({"question": "Approve?", "answer": ""}, c)
        if "__interrupt__" not in paused:
            raise AssertionError(f"{api.name}: no interrupt in {paused!r}")
        done = graph.invoke(api.Command(resume="yes"), c)
        if done.get("answer") != "yes!":
            raise AssertionError(f"{api.name}: resume result {done!r}")


def run_fanout(graph: Any, api: Api, n: int, checkpointer: bool, offset: int) -> None:
    async def go() -> None:
        for i in range(offset, offset + n):
            out = await graph.ainvoke({"items": []}, cfg(i, checkpointer))
            if sorted(out["items"]) != list(range(FANOUT_WIDTH)):
                raise AssertionError(f"{api.name}: fan-out result {out!r}")

    asyncio.run(go())


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Scenario:
    name: str
    build: Callable[[Api, bool], Any]
    run: Callable[[Any, Api, int, bool, int], None]
    checkpointer: bool
    target: float  # hitl time / LangGraph time must be at most this
    n_scale: float = 1.0  # fraction of --n (the async fan-out is ~10x heavier per call)
    not_applicable: str | None = None


SCENARIOS = [
    Scenario("linear", build_linear, run_linear, True, 1 / 5),
    Scenario("interrupt", build_interrupt, run_interrupt, True, 1 / 5, n_scale=0.5),
    Scenario("fanout", build_fanout, run_fanout, True, 1 / 3, n_scale=0.25),
    Scenario("linear_nocp", build_linear, run_linear, False, 1 / 3),
    Scenario(
        "interrupt_nocp",
        build_interrupt,
        run_interrupt,
        False,
        1 / 3,
        not_applicable=(
            "no resume without a checkpointer: hitl raises CheckpointerRequiredError on "
            "interrupt() by design (D4); LangGraph returns __interrupt__ but cannot resume"
        ),
    ),
    Scenario("fanout_nocp", build_fanout, run_fanout, False, 1 / 3, n_scale=0.25),
]


def time_one(sc: Scenario, api: Api, graph: Any, n: int, offset: int) -> float:
    """Milliseconds per invocation over n invocations on fresh threads."""
    gc.collect()
    t0 = time.perf_counter()
    sc.run(graph, api, n, sc.checkpointer, offset)
    return (time.perf_counter() - t0) * 1000 / n


def short_error(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"[:500]


def observe(sc: Scenario, api: Api | str) -> str:
    """What one invocation does, for a scenario that is not timed."""
    if isinstance(api, str):
        return api
    try:
        graph = sc.build(api, sc.checkpointer)
        out = graph.invoke({"question": "Approve?", "answer": ""}, cfg(0, sc.checkpointer))
    except BaseException as exc:  # GraphInterrupt is a BaseException in hitl
        if isinstance(exc, KeyboardInterrupt):
            raise
        return f"raises {type(exc).__name__}: {str(exc)[:200]}"
    return f"returns {sorted(out)}"


def measure(sc: Scenario, apis: dict[str, Api | str], runs: int, n: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "checkpointer": "InMemorySaver" if sc.checkpointer else None,
        "target_ratio": round(sc.target, 4),
    }
    if sc.not_applicable:
        entry.update(status="not_applicable", reason=sc.not_applicable)
        entry["observed"] = {name: observe(sc, api) for name, api in apis.items()}
        return entry
    n = max(1, int(n * sc.n_scale))
    entry["n"] = n
    graphs: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, api in apis.items():
        if isinstance(api, str):
            errors[name] = api
            continue
        try:
            graphs[name] = sc.build(api, sc.checkpointer)
            sc.run(graphs[name], api, max(20, n // 20), sc.checkpointer, 10**9)  # warm up
        except BaseException as exc:  # GraphInterrupt is a BaseException in hitl
            if isinstance(exc, KeyboardInterrupt):
                raise
            errors[name] = short_error(exc)
            graphs.pop(name, None)
    samples: dict[str, list[float]] = {name: [] for name in graphs}
    offset = 0
    for _ in range(runs):  # interleaved, so drift on the shared machine hits both alike
        for name in list(graphs):
            api = apis[name]
            assert not isinstance(api, str)
            try:
                samples[name].append(time_one(sc, api, graphs[name], n, offset))
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                errors[name] = short_error(exc)
                del graphs[name], samples[name]
        offset += n
    for name, values in samples.items():
        entry[f"{name}_ms"] = round(statistics.median(values), 4)
        entry[f"{name}_runs_ms"] = [round(v, 4) for v in values]
    if errors:
        entry["status"] = "error"
        entry["errors"] = errors
    elif "hitl" in samples and "langgraph" in samples:
        ratio = statistics.median(samples["hitl"]) / statistics.median(samples["langgraph"])
        entry["ratio"] = round(ratio, 4)
        entry["speedup"] = round(1 / ratio, 2)
        entry["status"] = "pass" if ratio <= sc.target else "fail"
    return entry


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for dist in ("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-postgres", "psycopg"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        commit = os.environ.get("BENCH_COMMIT", "unknown")
    return {
        "commit": commit,
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per scenario (median)")
    parser.add_argument("--n", type=int, default=2000, help="invocations per run (linear)")
    parser.add_argument("--quick", action="store_true", help="3 runs of 200 (smoke test)")
    parser.add_argument("--only", action="append", help="run only these scenarios")
    args = parser.parse_args(argv)
    runs, n = (3, 200) if args.quick else (args.runs, args.n)

    apis: dict[str, Api | str] = {}
    for name, loader in (("hitl", load_hitl), ("langgraph", load_langgraph)):
        try:
            apis[name] = loader()
        except Exception as exc:
            apis[name] = f"import failed: {short_error(exc)}"

    started = time.perf_counter()
    results = {
        sc.name: measure(sc, apis, runs, n)
        for sc in SCENARIOS
        if not args.only or sc.name in args.only
    }
    statuses = [r["status"] for r in results.values() if r.get("status") != "not_applicable"]
    doc = {
        "benchmark": "engine",
        "machine": machine(),
        "runs": runs,
        "n": n,
        "unit": "milliseconds per invocation (median of runs)",
        "scenarios": results,
        "summary": {
            "passed": statuses.count("pass"),
            "failed": statuses.count("fail"),
            "errors": statuses.count("error"),
            "all_pass": bool(statuses) and all(s == "pass" for s in statuses),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
