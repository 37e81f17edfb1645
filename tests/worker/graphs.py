"""Graphs the worker tests run. Nodes leave traces in files, so tests can count executions.

Trace lines go to ``$HITL_TEST_TRACE_DIR/trace-<pid>.log`` (one file per process, appends of
one short line are atomic) as ``<event> <thread id> <pid>``. Blocking nodes wait for the file
``$HITL_TEST_TRACE_DIR/release-<thread id>`` (asynchronously: heartbeats keep running).
"""

from __future__ import annotations

import asyncio
import operator
import os
from pathlib import Path
from typing import Annotated, Any, TypedDict

from app.graph import END, START, StateGraph, interrupt


def _dir() -> Path:
    return Path(os.environ.get("HITL_TEST_TRACE_DIR", "/tmp"))


def trace(event: str, tid: str) -> None:
    with open(_dir() / f"trace-{os.getpid()}.log", "a") as f:
        f.write(f"{event} {tid} {os.getpid()}\n")


def read_traces(directory: Path) -> list[tuple[str, str, int]]:
    """Every trace line of every process: (event, thread id, pid)."""
    lines: list[tuple[str, str, int]] = []
    for path in sorted(directory.glob("trace-*.log")):
        for line in path.read_text().splitlines():
            event, tid, pid = line.split()
            lines.append((event, tid, int(pid)))
    return lines


async def wait_for_release(tid: str) -> None:
    flag = _dir() / f"release-{tid}"
    while not flag.exists():
        await asyncio.sleep(0.02)


class State(TypedDict, total=False):
    tid: str
    steps: Annotated[list[str], operator.add]
    answer: Any
    result: Any


# -- approve: ask -> act (the seed's shape) ----------------------------------------------


def ask(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "approve?", "tid": state.get("tid")})
    return {"answer": answer, "steps": ["ask"]}


def act(state: State) -> dict[str, Any]:
    return {"result": f"did {state['answer']}", "steps": ["act"]}


def _approve() -> Any:
    g = StateGraph(State)
    g.add_node("ask", ask)
    g.add_node("act", act)
    g.add_edge(START, "ask")
    g.add_edge("ask", "act")
    g.add_edge("act", END)
    return g.compile()


# -- count: one node that leaves a trace (each execution counted) ------------------------


async def record(state: State) -> dict[str, Any]:
    trace("run", state["tid"])
    return {"steps": ["record"]}


def _count() -> Any:
    g = StateGraph(State)
    g.add_node("record", record)
    g.add_edge(START, "record")
    g.add_edge("record", END)
    return g.compile()


# -- slow: prepare -> ask -> work (work blocks until released) ---------------------------


def prepare(state: State) -> dict[str, Any]:
    return {"steps": ["prepare"]}


async def work(state: State) -> dict[str, Any]:
    trace("start", state["tid"])
    await wait_for_release(state["tid"])
    trace("done", state["tid"])
    return {"result": f"worked on {state['answer']}", "steps": ["work"]}


def _slow() -> Any:
    g = StateGraph(State)
    g.add_node("prepare", prepare)
    g.add_node("ask", ask)
    g.add_node("work", work)
    g.add_edge(START, "prepare")
    g.add_edge("prepare", "ask")
    g.add_edge("ask", "work")
    g.add_edge("work", END)
    return g.compile()


# -- block: work right away (for shutdown tests) -----------------------------------------


async def work_now(state: State) -> dict[str, Any]:
    trace("start", state["tid"])
    await wait_for_release(state["tid"])
    trace("done", state["tid"])
    return {"result": "worked", "steps": ["work"]}


def _block() -> Any:
    g = StateGraph(State)
    g.add_node("work", work_now)
    g.add_edge(START, "work")
    g.add_edge("work", END)
    return g.compile()


# -- sleepy: a synchronous node that blocks the event loop longer than a lease ------------


def nap(state: State) -> dict[str, Any]:
    import time

    trace("start", state["tid"])
    time.sleep(1.5)  # a lone sync node runs on the loop thread: heartbeats stall meanwhile
    trace("done", state["tid"])
    return {"steps": ["nap"]}


def _sleepy() -> Any:
    g = StateGraph(State)
    g.add_node("nap", nap)
    g.add_edge(START, "nap")
    g.add_edge("nap", END)
    return g.compile()


# -- boom: prepare -> explode (raises) ---------------------------------------------------


def explode(state: State) -> dict[str, Any]:
    raise ValueError(f"kaboom in {state.get('tid')}")


def _boom() -> Any:
    g = StateGraph(State)
    g.add_node("prepare", prepare)
    g.add_node("explode", explode)
    g.add_edge(START, "prepare")
    g.add_edge("prepare", "explode")
    g.add_edge("explode", END)
    return g.compile()


# -- unstorable: ask -> store an object no serializer accepts ----------------------------


class Opaque:
    """Not a dataclass, model or enum: serde refuses it."""


def store_opaque(state: State) -> dict[str, Any]:
    return {"result": Opaque(), "steps": ["store"]}


def _unstorable() -> Any:
    g = StateGraph(State)
    g.add_node("ask", ask)
    g.add_node("store", store_opaque)
    g.add_edge(START, "ask")
    g.add_edge("ask", "store")
    g.add_edge("store", END)
    return g.compile()


# -- deadline: a question with a schema, a timeout and a default -------------------------

AMOUNT_SCHEMA = {"type": "object", "properties": {"amount": {"type": "integer"}}}


def ask_amount(state: State) -> dict[str, Any]:
    answer = interrupt("how much?", schema=AMOUNT_SCHEMA, timeout=3600, default={"amount": 0})
    return {"answer": answer, "steps": ["ask_amount"]}


def ask_amount_soon(state: State) -> dict[str, Any]:
    answer = interrupt("how much, quickly?", timeout=0.3, default={"amount": 0})
    return {"answer": answer, "steps": ["ask_amount"]}


def _deadline(node: Any = ask_amount) -> Any:
    g = StateGraph(State)
    g.add_node("ask_amount", node)
    g.add_edge(START, "ask_amount")
    g.add_edge("ask_amount", END)
    return g.compile()


# -- review: two parallel reviewers, each asks; then merge -------------------------------


class ReviewState(TypedDict, total=False):
    tid: str
    reviews: Annotated[list[str], operator.add]
    verdict: str


def legal(state: ReviewState) -> dict[str, Any]:
    return {"reviews": [f"legal:{interrupt('legal ok?')}"]}


def finance(state: ReviewState) -> dict[str, Any]:
    return {"reviews": [f"finance:{interrupt('finance ok?')}"]}


def merge(state: ReviewState) -> dict[str, Any]:
    return {"verdict": ",".join(sorted(state["reviews"]))}


def _review() -> Any:
    g = StateGraph(ReviewState)
    g.add_node("legal", legal)
    g.add_node("finance", finance)
    g.add_node("merge", merge)
    g.add_edge(START, "legal")
    g.add_edge(START, "finance")
    g.add_edge(["legal", "finance"], "merge")
    g.add_edge("merge", END)
    return g.compile()


# -- nested: the question is asked inside a subgraph -------------------------------------


def _nested() -> Any:
    inner = StateGraph(State)
    inner.add_node("inner_ask", ask)
    inner.add_edge(START, "inner_ask")
    inner.add_edge("inner_ask", END)
    outer = StateGraph(State)
    outer.add_node("sub", inner.compile())
    outer.add_node("act", act)
    outer.add_edge(START, "sub")
    outer.add_edge("sub", "act")
    outer.add_edge("act", END)
    return outer.compile()


GRAPHS: dict[str, Any] = {
    "approve": _approve(),
    "count": _count(),
    "slow": _slow(),
    "block": _block(),
    "sleepy": _sleepy(),
    "boom": _boom(),
    "unstorable": _unstorable(),
    "review": _review(),
    "deadline": _deadline(),
    "quick_deadline": _deadline(ask_amount_soon),
    "nested": _nested(),
}

#: For ``HITL_GRAPHS`` (``name=module:attr``) of a real ``hitl serve`` process.
SLOW = GRAPHS["slow"]
