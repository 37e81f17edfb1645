"""Failures: node exceptions and retry, bad updates, bad routes, recursion limit, error types."""

from __future__ import annotations

from typing import Any

import pytest
from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import (
    END,
    START,
    CheckpointerRequiredError,
    Command,
    GraphError,
    GraphRecursionError,
    InvalidConfigError,
    InvalidGraphError,
    InvalidResumeError,
    InvalidUpdateError,
    RecursionLimitError,
    Send,
    StateGraph,
    interrupt,
)
from tests.graph.graphs import Calls, LogState, frozen, thread


class Boom(Exception):
    pass


def test_error_hierarchy() -> None:
    assert issubclass(InvalidGraphError, GraphError) and issubclass(InvalidGraphError, ValueError)
    assert issubclass(InvalidUpdateError, GraphError) and issubclass(InvalidUpdateError, ValueError)
    assert issubclass(GraphRecursionError, GraphError)
    assert issubclass(GraphRecursionError, RecursionError)
    assert RecursionLimitError is GraphRecursionError
    assert issubclass(InvalidResumeError, GraphError)
    assert issubclass(CheckpointerRequiredError, GraphError)
    assert issubclass(CheckpointerRequiredError, RuntimeError)
    assert issubclass(InvalidConfigError, GraphError) and issubclass(InvalidConfigError, ValueError)
    assert issubclass(GraphError, Exception)


# --- node exceptions ----------------------------------------------------------------------


def _flaky_graph(calls: Calls, failures: int, saver: Any) -> Any:
    """START -> first -> flaky -> last; flaky raises Boom on its first `failures` runs."""

    def first(state: LogState) -> dict[str, Any]:
        calls.hit("first")
        return {"log": ["first"]}

    def flaky(state: LogState) -> dict[str, Any]:
        calls.hit("flaky")
        if calls["flaky"] <= failures:
            raise Boom(f"failure {calls['flaky']}")
        return {"log": ["flaky"]}

    def last(state: LogState) -> dict[str, Any]:
        calls.hit("last")
        return {"log": ["last"]}

    g = StateGraph(LogState)
    g.add_node("first", first)
    g.add_node("flaky", flaky)
    g.add_node("last", last)
    g.add_edge(START, "first")
    g.add_edge("first", "flaky")
    g.add_edge("flaky", "last")
    return g.compile(checkpointer=saver)


def test_a_node_exception_propagates_unchanged() -> None:
    raised: list[Exception] = []

    def bad(state: LogState) -> dict[str, Any]:
        err = Boom("boom!")
        raised.append(err)
        raise err

    g = StateGraph(LogState)
    g.add_node("bad", bad)
    g.add_edge(START, "bad")

    with pytest.raises(Boom) as err:
        g.compile().invoke({"log": []})

    assert err.value is raised[0]


def test_invoke_none_retries_the_failed_node_only() -> None:
    calls = Calls()
    graph = _flaky_graph(calls, failures=1, saver=InMemorySaver())
    config = thread()

    with pytest.raises(Boom, match="failure 1"):
        graph.invoke({"log": []}, config)

    state = graph.get_state(config)
    assert state.next == ("flaky",)
    assert state.values == {"log": ["first"]}
    assert [t.name for t in state.tasks] == ["flaky"]
    assert state.tasks[0].error is not None
    assert "failure 1" in str(state.tasks[0].error)

    assert graph.invoke(None, config) == {"log": ["first", "flaky", "last"]}
    assert (calls["first"], calls["flaky"], calls["last"]) == (1, 2, 1)


def test_a_failing_parallel_task_does_not_rerun_its_finished_sibling() -> None:
    calls = Calls()
    fail = [True]

    def ok(state: LogState) -> dict[str, Any]:
        calls.hit("ok")
        return {"log": ["ok"]}

    def flaky(state: LogState) -> dict[str, Any]:
        calls.hit("flaky")
        if fail[0]:
            raise Boom("first try")
        return {"log": ["flaky"]}

    g = StateGraph(LogState)
    g.add_node("flaky", flaky)
    g.add_node("ok", ok)
    g.add_edge(START, "flaky")
    g.add_edge(START, "ok")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    with pytest.raises(Boom):
        graph.invoke({"log": []}, config)
    fail[0] = False

    assert graph.invoke(None, config) == {"log": ["flaky", "ok"]}
    assert (calls["flaky"], calls["ok"]) == (2, 1)


def test_a_failing_sibling_of_an_interrupted_task() -> None:
    calls = Calls()
    fail = [True]

    def ask(state: LogState) -> dict[str, Any]:
        calls.hit("ask")
        return {"log": [f"ask={interrupt('q')}"]}

    def flaky(state: LogState) -> dict[str, Any]:
        calls.hit("flaky")
        if fail[0]:
            raise Boom("sibling failed")
        return {"log": ["flaky"]}

    g = StateGraph(LogState)
    g.add_node("ask", ask)
    g.add_node("flaky", flaky)
    g.add_edge(START, "ask")
    g.add_edge(START, "flaky")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    with pytest.raises(Boom):
        graph.invoke({"log": []}, config)
    (pending,) = graph.get_state(config).interrupts  # the question is still recorded
    assert pending.value == "q"
    fail[0] = False

    retried = graph.invoke(None, config)
    assert retried["__interrupt__"] == (pending,)
    assert retried["log"] == ["flaky"]

    assert graph.invoke(Command(resume="A"), config) == {"log": ["ask=A", "flaky"]}
    assert calls["flaky"] == 2


async def test_an_async_node_exception_propagates_from_ainvoke() -> None:
    async def bad(state: LogState) -> dict[str, Any]:
        raise Boom("async boom")

    g = StateGraph(LogState)
    g.add_node("bad", bad)
    g.add_edge(START, "bad")

    with pytest.raises(Boom, match="async boom"):
        await g.compile().ainvoke({"log": []})


# --- bad updates --------------------------------------------------------------------------


@pytest.mark.parametrize("returned", ["oops", 42, ["log"]], ids=["str", "int", "list"])
def test_a_node_returning_a_non_dict_is_an_invalid_update(returned: Any) -> None:
    g = StateGraph(LogState)
    g.add_node("bad", lambda state: returned)
    g.add_edge(START, "bad")

    with pytest.raises(InvalidUpdateError):
        g.compile().invoke({"log": []})


def test_a_node_writing_an_unknown_key_is_an_invalid_update() -> None:
    g = StateGraph(LogState)
    g.add_node("bad", lambda state: {"nope": 1})
    g.add_edge(START, "bad")

    with pytest.raises(InvalidUpdateError, match="nope"):
        g.compile().invoke({"log": []})


def test_a_node_returning_none_changes_nothing() -> None:
    g = StateGraph(LogState)
    g.add_node("quiet", lambda state: None)
    g.add_edge(START, "quiet")

    assert g.compile().invoke({"log": ["x"]}) == {"log": ["x"]}


def test_non_dict_input_is_rejected_before_anything_is_written() -> None:
    calls = Calls()
    graph = _flaky_graph(calls, failures=0, saver=InMemorySaver())
    config = thread()

    with pytest.raises(InvalidUpdateError):
        graph.invoke("hello", config)

    assert graph.get_state(config).values == {}
    assert list(graph.get_state_history(config)) == []
    assert calls["first"] == 0


def test_non_dict_input_on_a_finished_thread_writes_nothing() -> None:
    graph = _flaky_graph(Calls(), failures=0, saver=InMemorySaver())
    config = thread()
    graph.invoke({"log": []}, config)
    before = frozen(graph, config)

    with pytest.raises(InvalidUpdateError):
        graph.invoke("hello", config)

    assert frozen(graph, config) == before
    assert graph.invoke({"log": []}, config)["log"][-1] == "last"  # the thread still works


# --- bad routes ---------------------------------------------------------------------------


def test_command_goto_to_an_unknown_node_is_an_error_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("go", lambda state: Command(goto="nowhere_node"))
    g.add_edge(START, "go")

    with pytest.raises(GraphError, match="nowhere_node"):
        g.compile().invoke({"log": []})


def test_conditional_edge_to_an_unknown_node_is_an_error_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("a", lambda state: {"log": ["a"]})
    g.add_edge(START, "a")
    g.add_conditional_edges("a", lambda state: "missing_node")

    with pytest.raises(GraphError, match="missing_node"):
        g.compile().invoke({"log": []})


def test_send_to_an_unknown_node_is_an_error_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("a", lambda state: {"log": ["a"]})
    g.add_conditional_edges(START, lambda state: [Send("ghost_node", 1)])

    with pytest.raises(GraphError, match="ghost_node"):
        g.compile().invoke({"log": []})


# --- recursion limit ----------------------------------------------------------------------


class Counter(TypedDict):
    n: int


def _counting_loop(stop_at: int | None) -> Any:
    """A node that loops back to itself until n reaches stop_at (forever when None)."""
    g = StateGraph(Counter)
    g.add_node("inc", lambda state: {"n": state["n"] + 1})
    g.add_edge(START, "inc")
    g.add_conditional_edges(
        "inc", lambda state: END if stop_at is not None and state["n"] >= stop_at else "inc"
    )
    return g.compile()


def test_a_runaway_loop_hits_the_default_recursion_limit() -> None:
    with pytest.raises(GraphRecursionError):
        _counting_loop(None).invoke({"n": 0})


def test_recursion_limit_comes_from_the_config() -> None:
    graph = _counting_loop(10)

    assert graph.invoke({"n": 0}) == {"n": 10}
    with pytest.raises(GraphRecursionError):
        graph.invoke({"n": 0}, {"recursion_limit": 5})
    assert graph.invoke({"n": 0}, {"recursion_limit": 100}) == {"n": 10}


def test_a_loop_longer_than_the_default_limit_needs_a_higher_limit() -> None:
    graph = _counting_loop(40)

    with pytest.raises(RecursionError):
        graph.invoke({"n": 0})
    assert graph.invoke({"n": 0}, {"recursion_limit": 100}) == {"n": 40}


def test_a_thread_stopped_by_the_recursion_limit_can_continue_with_a_higher_limit() -> None:
    g = StateGraph(Counter)
    g.add_node("inc", lambda state: {"n": state["n"] + 1})
    g.add_edge(START, "inc")
    g.add_conditional_edges("inc", lambda state: END if state["n"] >= 10 else "inc")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    with pytest.raises(GraphRecursionError):
        graph.invoke({"n": 0}, {**config, "recursion_limit": 4})
    stopped_at = graph.get_state(config).values["n"]
    assert 0 < stopped_at < 10

    assert graph.invoke(None, {**config, "recursion_limit": 50}) == {"n": 10}
