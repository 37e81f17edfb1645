"""Example graphs and small helpers shared by the engine behaviour tests.

Builders take the saver (or None) and a `Calls` recorder, so a test can count how often each
node ran: that is how "finished siblings are not re-run" and "the node re-runs from its top"
are observed from outside the engine.
"""

from __future__ import annotations

import itertools
import operator
import re
import threading
import uuid
from collections import Counter
from typing import Annotated, Any

from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import END, START, Send, StateGraph, interrupt

ID_RE = re.compile(r"^[0-9a-f]{32}$")


def thread(**extra: Any) -> dict[str, Any]:
    """A config that selects a brand-new thread."""
    return {"configurable": {"thread_id": f"t-{uuid.uuid4().hex}"}, **extra}


def at(config: dict[str, Any], checkpoint_id: str) -> dict[str, Any]:
    """The same thread, pinned to one checkpoint (time travel)."""
    return {"configurable": {**config["configurable"], "checkpoint_id": checkpoint_id}}


class Calls:
    """Thread-safe record of node runs: sync parallel nodes run in worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.trace: list[str] = []

    def hit(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1
            self.trace.append(name)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]


def frozen(graph: Any, config: dict[str, Any]) -> tuple[Any, list[Any]]:
    """What an observer can see of a thread: the live snapshot and the history configs."""
    return graph.get_state(config), [s.config for s in graph.get_state_history(config)]


def ids(interrupts: Any) -> list[str]:
    return [i.id for i in interrupts]


# --- the seed's example -------------------------------------------------------------------


class AgentState(TypedDict):
    approval: str


def approval_graph(saver: Any = None, calls: Calls | None = None) -> Any:
    """The seed example: one node that asks for approval."""
    rec = calls or Calls()

    def ask_for_approval(state: AgentState) -> dict[str, Any]:
        rec.hit("ask_for_approval")
        response = interrupt("Do you approve this action?")
        return {"approval": response}

    workflow = StateGraph(AgentState)
    workflow.add_node("approval_node", ask_for_approval)
    workflow.set_entry_point("approval_node")
    workflow.add_edge("approval_node", END)
    return workflow.compile(checkpointer=saver)


# --- a node with two questions ------------------------------------------------------------


class FormState(TypedDict, total=False):
    name: str
    age: str


def two_questions_graph(saver: Any, calls: Calls) -> Any:
    """One node that asks two questions in a row (answers are matched by call order)."""

    def form(state: FormState) -> dict[str, Any]:
        calls.hit("form")
        name = interrupt("name?")
        calls.hit("form:after_name")
        age = interrupt("age?")
        calls.hit("form:after_age")
        return {"name": name, "age": age}

    g = StateGraph(FormState)
    g.add_node("form", form)
    g.add_edge(START, "form")
    g.add_edge("form", END)
    return g.compile(checkpointer=saver)


# --- parallel nodes: a and b ask, c just writes -------------------------------------------


class LogState(TypedDict):
    log: Annotated[list[str], operator.add]


def parallel_graph(saver: Any, calls: Calls) -> Any:
    """START -> {a, b, c} -> join. a and b interrupt; c finishes in the same step."""

    def a(state: LogState) -> dict[str, Any]:
        calls.hit("a")
        return {"log": [f"a={interrupt('qa')}"]}

    def b(state: LogState) -> dict[str, Any]:
        calls.hit("b")
        return {"log": [f"b={interrupt('qb')}"]}

    def c(state: LogState) -> dict[str, Any]:
        calls.hit("c")
        return {"log": ["c"]}

    def join(state: LogState) -> dict[str, Any]:
        calls.hit("join")
        return {"log": ["join"]}

    g = StateGraph(LogState)
    for name, fn in (("a", a), ("b", b), ("c", c), ("join", join)):
        g.add_node(name, fn)
        if name != "join":
            g.add_edge(START, name)
            g.add_edge(name, "join")
    g.add_edge("join", END)
    return g.compile(checkpointer=saver)


# --- Send fan-out -------------------------------------------------------------------------


class FanState(TypedDict, total=False):
    items: list[str]
    results: Annotated[list[str], operator.add]


def fanout_graph(saver: Any, calls: Calls, *, ask: bool = True) -> Any:
    """START --Send per item--> review -> collect. Each review asks one question."""

    def fan(state: FanState) -> list[Send]:
        return [Send("review", {"item": item}) for item in state["items"]]

    def review(arg: dict[str, Any]) -> dict[str, Any]:
        calls.hit(f"review:{arg['item']}")
        answer = interrupt({"review": arg["item"]}) if ask else "auto"
        return {"results": [f"{arg['item']}={answer}"]}

    def collect(state: FanState) -> dict[str, Any]:
        calls.hit("collect")
        return {"results": ["collected"]}

    g = StateGraph(FanState)
    g.add_node("review", review)
    g.add_node("collect", collect)
    g.add_conditional_edges(START, fan)
    g.add_edge("review", "collect")
    g.add_edge("collect", END)
    return g.compile(checkpointer=saver)


# --- a plain linear graph -----------------------------------------------------------------


def linear_graph(
    saver: Any, calls: Calls, names: tuple[str, ...] = ("a", "b", "c"), **compile_kw: Any
) -> Any:
    """START -> a -> b -> c -> END; each node appends its name to `log`."""

    def make(name: str) -> Any:
        def node(state: LogState) -> dict[str, Any]:
            calls.hit(name)
            return {"log": [name]}

        return node

    g = StateGraph(LogState)
    for name in names:
        g.add_node(name, make(name))
    g.add_edge(START, names[0])
    for left, right in itertools.pairwise(names):
        g.add_edge(left, right)
    g.add_edge(names[-1], END)
    return g.compile(checkpointer=saver, **compile_kw)


def ask_then_log_graph(saver: Any, calls: Calls) -> Any:
    """START -> before -> ask -> after: the middle node asks once and logs the answer."""

    def before(state: LogState) -> dict[str, Any]:
        calls.hit("before")
        return {"log": ["before"]}

    def ask(state: LogState) -> dict[str, Any]:
        calls.hit("ask")
        return {"log": [f"ask={interrupt('continue?')}"]}

    def after(state: LogState) -> dict[str, Any]:
        calls.hit("after")
        return {"log": ["after"]}

    g = StateGraph(LogState)
    g.add_node("before", before)
    g.add_node("ask", ask)
    g.add_node("after", after)
    g.add_edge(START, "before")
    g.add_edge("before", "ask")
    g.add_edge("ask", "after")
    g.add_edge("after", END)
    return g.compile(checkpointer=saver)


def new_saver() -> InMemorySaver:
    return InMemorySaver()
