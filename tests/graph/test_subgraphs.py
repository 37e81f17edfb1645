"""Compiled graphs used as nodes: shared checkpointer, own checkpoints, PARENT commands."""

from __future__ import annotations

import operator
from typing import Annotated, Any

import pytest
from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import (
    END,
    START,
    CheckpointerRequiredError,
    Command,
    Send,
    StateGraph,
    interrupt,
)
from tests.graph.graphs import ID_RE, Calls, LogState, thread


class S(TypedDict, total=False):
    topic: str
    s1: str
    s2: str
    after: str


def _sub(calls: Calls, *, ask: bool = True) -> Any:
    """s1 -> s2; s2 asks a question. Compiled without a checkpointer of its own."""

    def s1(state: S) -> dict[str, Any]:
        calls.hit("s1")
        return {"s1": f"s1({state['topic']})"}

    def s2(state: S) -> dict[str, Any]:
        calls.hit("s2")
        return {"s2": interrupt("sub q") if ask else "auto"}

    g = StateGraph(S)
    g.add_node("s1", s1)
    g.add_node("s2", s2)
    g.add_edge(START, "s1")
    g.add_edge("s1", "s2")
    g.add_edge("s2", END)
    return g.compile()


def _parent(sub: Any, calls: Calls, saver: Any) -> Any:
    def after(state: S) -> dict[str, Any]:
        calls.hit("after")
        return {"after": f"after({state['s2']})"}

    g = StateGraph(S)
    g.add_node("sub", sub)
    g.add_node("after", after)
    g.add_edge(START, "sub")
    g.add_edge("sub", "after")
    g.add_edge("after", END)
    return g.compile(checkpointer=saver)


def test_subgraph_without_interrupts_returns_its_state_to_the_parent() -> None:
    calls = Calls()
    graph = _parent(_sub(calls, ask=False), calls, None)

    result = graph.invoke({"topic": "t"})

    assert result == {"topic": "t", "s1": "s1(t)", "s2": "auto", "after": "after(auto)"}
    assert calls.trace == ["s1", "s2", "after"]


def test_subgraph_interrupt_uses_the_parents_checkpointer() -> None:
    calls = Calls()
    graph = _parent(_sub(calls), calls, InMemorySaver())
    config = thread()

    result = graph.invoke({"topic": "t"}, config)

    (pending,) = result["__interrupt__"]
    assert pending.value == "sub q"
    assert ID_RE.match(pending.id)
    assert result["topic"] == "t"
    assert "after" not in result
    state = graph.get_state(config)
    assert state.next == ("sub",)
    assert state.interrupts == (pending,)
    assert [t.name for t in state.tasks] == ["sub"]
    assert state.tasks[0].interrupts == (pending,)


def test_subgraph_resumes_from_its_own_checkpoint() -> None:
    calls = Calls()
    graph = _parent(_sub(calls), calls, InMemorySaver())
    config = thread()
    graph.invoke({"topic": "t"}, config)

    result = graph.invoke(Command(resume="A"), config)

    assert result == {"topic": "t", "s1": "s1(t)", "s2": "A", "after": "after(A)"}
    assert calls.trace == ["s1", "s2", "s2", "after"]  # s1 did not run again


def test_subgraph_interrupt_id_is_stable_and_answerable_by_map_from_the_root() -> None:
    calls = Calls()
    graph = _parent(_sub(calls), calls, InMemorySaver())
    config = thread()
    (first,) = graph.invoke({"topic": "t"}, config)["__interrupt__"]

    (again,) = graph.invoke(None, config)["__interrupt__"]
    assert again == first

    result = graph.invoke(Command(resume={first.id: "B"}), config)

    assert result["s2"] == "B"
    assert calls["s1"] == 1


def test_subgraph_interrupt_without_any_checkpointer_raises() -> None:
    calls = Calls()
    graph = _parent(_sub(calls), calls, None)

    with pytest.raises(CheckpointerRequiredError, match="checkpointer="):
        graph.invoke({"topic": "t"}, thread())


# --- parallel subgraphs -------------------------------------------------------------------


def _log_sub(calls: Calls) -> Any:
    def s1(state: LogState) -> dict[str, Any]:
        calls.hit("s1")
        return {"log": ["s1"]}

    def s2(state: LogState) -> dict[str, Any]:
        calls.hit("s2")
        return {"log": [f"s2={interrupt('sub q')}"]}

    g = StateGraph(LogState)
    g.add_node("s1", s1)
    g.add_node("s2", s2)
    g.add_edge(START, "s1")
    g.add_edge("s1", "s2")
    return g.compile()


def _parallel_parent(calls: Calls) -> Any:
    sub = _log_sub(calls)
    g = StateGraph(LogState)
    g.add_node("sub1", sub)
    g.add_node("sub2", sub)
    g.add_node("after", lambda state: {"log": ["after"]})
    g.add_edge(START, "sub1")
    g.add_edge(START, "sub2")
    g.add_edge("sub1", "after")
    g.add_edge("sub2", "after")
    return g.compile(checkpointer=InMemorySaver())


def test_parallel_subgraph_interrupts_have_distinct_ids() -> None:
    graph = _parallel_parent(Calls())
    config = thread()

    first, second = graph.invoke({"log": []}, config)["__interrupt__"]

    assert first.id != second.id
    assert graph.get_state(config).next == ("sub1", "sub2")


def test_parallel_subgraph_interrupts_resumed_by_map_all() -> None:
    calls = Calls()
    graph = _parallel_parent(calls)
    config = thread()
    first, second = graph.invoke({"log": []}, config)["__interrupt__"]

    result = graph.invoke(Command(resume={first.id: "A", second.id: "B"}), config)

    assert result == {"log": ["s1", "s2=A", "s1", "s2=B", "after"]}
    assert calls["s1"] == 2  # once per subgraph; neither re-ran its first node
    assert calls["s2"] == 4


def test_parallel_subgraph_interrupts_resumed_by_map_some() -> None:
    calls = Calls()
    graph = _parallel_parent(calls)
    config = thread()
    first, second = graph.invoke({"log": []}, config)["__interrupt__"]

    partial = graph.invoke(Command(resume={second.id: "B"}), config)
    assert partial["__interrupt__"] == (first,)

    result = graph.invoke(Command(resume={first.id: "A"}), config)

    assert result == {"log": ["s1", "s2=A", "s1", "s2=B", "after"]}
    assert calls["s1"] == 2
    assert calls["s2"] == 5  # sub2 finished in the partial resume and did not run again


# --- Command(graph=Command.PARENT) --------------------------------------------------------


def _parent_command_graph(*, ask: bool, saver: Any) -> Any:
    def inner(state: LogState) -> Command[Any]:
        where = interrupt("where?") if ask else "right"
        return Command(graph=Command.PARENT, goto=where, update={"log": [f"inner:{where}"]})

    sub_builder = StateGraph(LogState)
    sub_builder.add_node("inner", inner)
    sub_builder.add_edge(START, "inner")
    sub = sub_builder.compile()

    g = StateGraph(LogState)
    g.add_node("sub", sub, destinations=("left", "right"))
    g.add_node("left", lambda state: {"log": ["left"]})
    g.add_node("right", lambda state: {"log": ["right"]})
    g.add_edge(START, "sub")
    return g.compile(checkpointer=saver)


def test_command_parent_routes_the_parent_graph() -> None:
    graph = _parent_command_graph(ask=False, saver=None)

    assert graph.invoke({"log": []}) == {"log": ["inner:right", "right"]}


def test_command_parent_after_an_interrupt() -> None:
    graph = _parent_command_graph(ask=True, saver=InMemorySaver())
    config = thread()
    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]
    assert pending.value == "where?"

    assert graph.invoke(Command(resume="left"), config) == {"log": ["inner:left", "left"]}


# --- a graph invoked inside a node function -----------------------------------------------


def test_graph_invoked_inside_a_node_resumes_from_its_own_checkpoint() -> None:
    calls = Calls()
    inner = _log_sub(calls)

    def wrapper(state: LogState, config: dict[str, Any]) -> dict[str, Any]:
        calls.hit("wrapper:start")
        out = inner.invoke({"log": []}, config)
        calls.hit("wrapper:end")
        return {"log": out["log"]}

    g = StateGraph(LogState)
    g.add_node("wrapper", wrapper)
    g.add_edge(START, "wrapper")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]
    assert pending.value == "sub q"

    assert graph.invoke(Command(resume="A"), config) == {"log": ["s1", "s2=A"]}
    assert calls.trace == ["wrapper:start", "s1", "s2", "wrapper:start", "s2", "wrapper:end"]


# --- deeper shapes ------------------------------------------------------------------------


def test_nested_subgraphs_resume_from_the_innermost_checkpoint() -> None:
    calls = Calls()
    inner = _log_sub(calls)  # s1 -> s2 (asks)

    def m1(state: LogState) -> dict[str, Any]:
        calls.hit("m1")
        return {"log": ["m1"]}

    mid_builder = StateGraph(LogState)
    mid_builder.add_node("m1", m1)
    mid_builder.add_node("inner", inner)
    mid_builder.add_edge(START, "m1")
    mid_builder.add_edge("m1", "inner")
    mid = mid_builder.compile()

    g = StateGraph(LogState)
    g.add_node("mid", mid)
    g.add_edge(START, "mid")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]
    assert graph.invoke(None, config)["__interrupt__"] == (pending,)

    result = graph.invoke(Command(resume={pending.id: "deep"}), config)

    assert result["log"][-1] == "s2=deep"
    assert "m1" in result["log"] and "s1" in result["log"]
    assert (calls["m1"], calls["s1"], calls["s2"]) == (1, 1, 3)


class Review(TypedDict, total=False):
    topic: str
    done: Annotated[list[str], operator.add]
    scratch: str  # private to the subgraph: never reaches the parent


class Topics(TypedDict, total=False):
    topics: list[str]
    done: Annotated[list[str], operator.add]


def test_send_fanout_to_a_subgraph_resumed_by_map() -> None:
    calls = Calls()

    def ask(state: Review) -> dict[str, Any]:
        calls.hit(f"ask:{state['topic']}")
        answer = interrupt(state["topic"])
        return {"done": [f"{state['topic']}={answer}"], "scratch": "private"}

    sub_builder = StateGraph(Review)
    sub_builder.add_node("ask", ask)
    sub_builder.add_edge(START, "ask")
    sub = sub_builder.compile()

    g = StateGraph(Topics)
    g.add_node("sub", sub)
    g.add_conditional_edges(START, lambda s: [Send("sub", {"topic": t}) for t in s["topics"]])
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    x, y = graph.invoke({"topics": ["x", "y"]}, config)["__interrupt__"]

    assert [x.value, y.value] == ["x", "y"]
    assert x.id != y.id
    assert graph.get_state(config).next == ("sub", "sub")
    result = graph.invoke(Command(resume={y.id: "2", x.id: "1"}), config)
    assert result == {"topics": ["x", "y"], "done": ["x=1", "y=2"]}
    assert (calls["ask:x"], calls["ask:y"]) == (2, 2)


def test_a_subgraph_visited_twice_starts_fresh_the_second_time() -> None:
    calls = Calls()
    sub = _log_sub(calls)

    def route(state: LogState) -> str:
        return END if len(state["log"]) >= 4 else "sub"

    g = StateGraph(LogState)
    g.add_node("sub", sub)
    g.add_edge(START, "sub")
    g.add_conditional_edges("sub", route)
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    (first,) = graph.invoke({"log": []}, config)["__interrupt__"]
    (second,) = graph.invoke(Command(resume="one"), config)["__interrupt__"]

    assert second.id != first.id
    assert calls["s1"] == 2  # the second visit ran the subgraph from its start
    result = graph.invoke(Command(resume="two"), config)
    assert result["log"][-1] == "s2=two"
    assert calls.trace.count("s1") == 2


def test_a_subgraph_node_with_two_questions() -> None:
    calls = Calls()

    def form(state: S) -> dict[str, Any]:
        calls.hit("form")
        return {"s1": interrupt("first?"), "s2": interrupt("second?")}

    sub_builder = StateGraph(S)
    sub_builder.add_node("form", form)
    sub_builder.add_edge(START, "form")
    parent = _parent(sub_builder.compile(), calls, InMemorySaver())
    config = thread()

    (q1,) = parent.invoke({"topic": "t"}, config)["__interrupt__"]
    (q2,) = parent.invoke(Command(resume="A"), config)["__interrupt__"]
    assert q2.value == "second?" and q2.id != q1.id
    assert parent.invoke(None, config)["__interrupt__"] == (q2,)  # "A" is not reused

    result = parent.invoke(Command(resume="B"), config)

    assert (result["s1"], result["s2"], result["after"]) == ("A", "B", "after(B)")


async def test_async_subgraph_interrupt_and_resume() -> None:
    calls = Calls()

    async def s1(state: LogState) -> dict[str, Any]:
        calls.hit("s1")
        return {"log": ["s1"]}

    async def s2(state: LogState) -> dict[str, Any]:
        calls.hit("s2")
        return {"log": [f"s2={interrupt('q')}"]}

    sub_builder = StateGraph(LogState)
    sub_builder.add_node("s1", s1)
    sub_builder.add_node("s2", s2)
    sub_builder.add_edge(START, "s1")
    sub_builder.add_edge("s1", "s2")
    g = StateGraph(LogState)
    g.add_node("sub", sub_builder.compile())
    g.add_edge(START, "sub")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    (pending,) = (await graph.ainvoke({"log": []}, config))["__interrupt__"]
    result = await graph.ainvoke(Command(resume={pending.id: "ok"}), config)

    assert result == {"log": ["s1", "s2=ok"]}
    assert calls.trace == ["s1", "s2", "s2"]


def test_a_failed_subgraph_node_is_retried_from_the_subgraphs_checkpoint() -> None:
    calls = Calls()
    fail = [True]

    def s1(state: LogState) -> dict[str, Any]:
        calls.hit("s1")
        return {"log": ["s1"]}

    def s2(state: LogState) -> dict[str, Any]:
        calls.hit("s2")
        if fail[0]:
            raise ValueError("boom")
        return {"log": ["s2"]}

    sub_builder = StateGraph(LogState)
    sub_builder.add_node("s1", s1)
    sub_builder.add_node("s2", s2)
    sub_builder.add_edge(START, "s1")
    sub_builder.add_edge("s1", "s2")
    g = StateGraph(LogState)
    g.add_node("sub", sub_builder.compile())
    g.add_edge(START, "sub")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    with pytest.raises(ValueError, match="boom"):
        graph.invoke({"log": []}, config)
    state = graph.get_state(config)
    assert state.next == ("sub",)
    assert state.tasks[0].error is not None
    fail[0] = False

    assert graph.invoke(None, config) == {"log": ["s1", "s2"]}
    assert (calls["s1"], calls["s2"]) == (1, 2)


def test_a_graph_invoked_inside_a_node_without_any_checkpointer_raises() -> None:
    inner = _log_sub(Calls())
    g = StateGraph(LogState)
    g.add_node("wrapper", lambda state: {"log": inner.invoke({"log": []})["log"]})
    g.add_edge(START, "wrapper")

    with pytest.raises(CheckpointerRequiredError, match="checkpointer="):
        g.compile().invoke({"log": []})
