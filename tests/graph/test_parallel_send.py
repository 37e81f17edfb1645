"""Parallel branches, joins and Send fan-out: concurrency and deterministic write order."""

from __future__ import annotations

import contextvars
import operator
import threading
from typing import Annotated, Any

from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import END, START, Command, Send, StateGraph, interrupt
from tests.graph.graphs import Calls, LogState, fanout_graph, thread

WAIT = 5.0


def _logger(name: str, calls: Calls | None = None) -> Any:
    def node(state: LogState) -> dict[str, Any]:
        if calls is not None:
            calls.hit(name)
        return {"log": [name]}

    return node


def test_sync_parallel_nodes_run_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=WAIT)

    def a(state: LogState) -> dict[str, Any]:
        barrier.wait()  # raises BrokenBarrierError unless b is running at the same time
        return {"log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        barrier.wait()
        return {"log": ["b"]}

    g = StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge(START, "b")

    assert g.compile().invoke({"log": []}) == {"log": ["a", "b"]}


def test_parallel_writes_are_applied_in_task_order_not_completion_order() -> None:
    b_done = threading.Event()

    def a(state: LogState) -> dict[str, Any]:
        assert b_done.wait(WAIT), "a and b did not run concurrently"
        return {"log": ["a"]}

    def b(state: LogState) -> dict[str, Any]:
        try:
            return {"log": ["b"]}
        finally:
            b_done.set()

    g = StateGraph(LogState)
    g.add_node("a", a)
    g.add_node("b", b)
    g.add_edge(START, "a")
    g.add_edge(START, "b")

    assert g.compile().invoke({"log": []}) == {"log": ["a", "b"]}


def test_conditional_edge_returning_several_names_runs_them_in_one_step() -> None:
    calls = Calls()
    g = StateGraph(LogState)
    g.add_node("route", _logger("route", calls))
    g.add_node("x", _logger("x", calls))
    g.add_node("y", _logger("y", calls))
    g.add_node("z", _logger("z", calls))
    g.add_edge(START, "route")
    g.add_conditional_edges("route", lambda s: ["x", "z"])

    assert g.compile().invoke({"log": []}) == {"log": ["route", "x", "z"]}
    assert calls["y"] == 0


def test_join_edge_waits_for_every_source() -> None:
    calls = Calls()
    g = StateGraph(LogState)
    for name in ("a", "a2", "b", "c"):
        g.add_node(name, _logger(name, calls))
    g.add_edge(START, "a")
    g.add_edge("a", "a2")
    g.add_edge(START, "b")
    g.add_edge(["a2", "b"], "c")
    g.add_edge("c", END)

    result = g.compile().invoke({"log": []})

    assert result == {"log": ["a", "b", "a2", "c"]}
    assert calls["c"] == 1


def test_plain_edges_from_different_depths_trigger_the_target_twice() -> None:
    """The contrast to the join: without a barrier, each arriving branch triggers c."""
    calls = Calls()
    g = StateGraph(LogState)
    for name in ("a", "a2", "b", "c"):
        g.add_node(name, _logger(name, calls))
    g.add_edge(START, "a")
    g.add_edge("a", "a2")
    g.add_edge(START, "b")
    g.add_edge("a2", "c")
    g.add_edge("b", "c")

    assert g.compile().invoke({"log": []}) == {"log": ["a", "b", "a2", "c", "c"]}
    assert calls["c"] == 2


def test_send_passes_its_argument_as_the_node_input() -> None:
    received: list[Any] = []

    class S(TypedDict, total=False):
        items: list[int]
        out: Annotated[list[int], operator.add]

    def worker(arg: Any) -> dict[str, Any]:
        received.append(arg)
        return {"out": [arg["n"] * 10]}

    g = StateGraph(S)
    g.add_node("worker", worker)
    g.add_conditional_edges(START, lambda s: [Send("worker", {"n": n}) for n in s["items"]])

    result = g.compile().invoke({"items": [1, 2, 3]})

    assert result == {"items": [1, 2, 3], "out": [10, 20, 30]}
    assert sorted(received, key=lambda a: a["n"]) == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_send_results_follow_send_order_not_completion_order() -> None:
    """Worker i waits until worker i+1 has finished, so they finish in reverse order."""
    done = [threading.Event() for _ in range(3)]

    class S(TypedDict, total=False):
        out: Annotated[list[int], operator.add]

    def worker(arg: int) -> dict[str, Any]:
        try:
            if arg + 1 < len(done):
                assert done[arg + 1].wait(WAIT), "Send tasks did not run concurrently"
            return {"out": [arg]}
        finally:
            done[arg].set()

    g = StateGraph(S)
    g.add_node("worker", worker)
    g.add_conditional_edges(START, lambda s: [Send("worker", i) for i in range(3)])

    assert g.compile().invoke({}) == {"out": [0, 1, 2]}


def test_fanout_then_edge_runs_the_collector_once() -> None:
    calls = Calls()
    graph = fanout_graph(InMemorySaver(), calls, ask=False)

    result = graph.invoke({"items": ["x", "y", "z"]}, thread())

    assert result["results"] == ["x=auto", "y=auto", "z=auto", "collected"]
    assert calls["collect"] == 1


def test_empty_send_list_ends_the_run() -> None:
    calls = Calls()

    class S(TypedDict, total=False):
        items: list[int]
        out: Annotated[list[int], operator.add]

    def worker(arg: int) -> dict[str, Any]:
        calls.hit("worker")
        return {"out": [arg]}

    g = StateGraph(S)
    g.add_node("worker", worker)
    g.add_conditional_edges(START, lambda s: [Send("worker", i) for i in s["items"]])

    assert g.compile().invoke({"items": []}) == {"items": [], "out": []}
    assert calls["worker"] == 0


def test_command_goto_with_sends_from_a_node() -> None:
    class S(TypedDict, total=False):
        out: Annotated[list[str], operator.add]

    def plan(state: S) -> Command[Any]:
        return Command(update={"out": ["plan"]}, goto=[Send("work", "p"), Send("work", "q")])

    def work(arg: str) -> dict[str, Any]:
        return {"out": [f"work:{arg}"]}

    g = StateGraph(S)
    g.add_node("plan", plan)
    g.add_node("work", work)
    g.add_edge(START, "plan")

    assert g.compile().invoke({}) == {"out": ["plan", "work:p", "work:q"]}


def test_edge_tasks_come_before_send_tasks_in_one_step() -> None:
    g = StateGraph(LogState)
    g.add_node("w", lambda arg: {"log": [f"w:{arg}"]})
    g.add_node("a", _logger("a"))
    g.add_edge(START, "a")
    g.add_conditional_edges(START, lambda s: [Send("w", 1), Send("w", 2)])

    assert g.compile().invoke({"log": []}) == {"log": ["a", "w:1", "w:2"]}


def test_parallel_sync_nodes_see_the_callers_context_variables() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []
    lock = threading.Lock()

    def node(state: LogState) -> dict[str, Any]:
        with lock:
            seen.append(var.get())
        return {}

    g = StateGraph(LogState)
    g.add_node("a", node)
    g.add_node("b", node)
    g.add_node("c", node)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("a", "c")
    graph = g.compile()

    token = var.set("caller")
    try:
        graph.invoke({"log": []})
    finally:
        var.reset(token)

    assert seen == ["caller", "caller", "caller"]


def test_send_tasks_with_two_questions_each_keep_their_own_answers() -> None:
    class S(TypedDict, total=False):
        out: Annotated[list[str], operator.add]

    def form(arg: str) -> dict[str, Any]:
        first = interrupt(f"{arg}:1")
        second = interrupt(f"{arg}:2")
        return {"out": [f"{arg}={first},{second}"]}

    g = StateGraph(S)
    g.add_node("form", form)
    g.add_conditional_edges(START, lambda s: [Send("form", "p"), Send("form", "q")])
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()
    p1, q1 = graph.invoke({}, config)["__interrupt__"]
    assert [p1.value, q1.value] == ["p:1", "q:1"]

    p2, q2 = graph.invoke(Command(resume={p1.id: "a", q1.id: "b"}), config)["__interrupt__"]
    assert [p2.value, q2.value] == ["p:2", "q:2"]
    assert len({p1.id, q1.id, p2.id, q2.id}) == 4

    done = graph.invoke(Command(resume={q2.id: "d", p2.id: "c"}), config)
    assert done == {"out": ["p=a,c", "q=b,d"]}
