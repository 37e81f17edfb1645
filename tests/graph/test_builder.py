"""StateGraph builder: nodes, edges, conditional routing, validation, drawing, copies."""

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
    InvalidGraphError,
    StateGraph,
    interrupt,
)
from tests.graph.graphs import Calls, LogState, approval_graph, linear_graph, thread


def _log(name: str) -> Any:
    def node(state: LogState) -> dict[str, Any]:
        return {"log": [name]}

    node.__name__ = name
    return node


# --- nodes and edges ----------------------------------------------------------------------


def test_add_node_without_a_name_uses_the_function_name() -> None:
    def greet(state: LogState) -> dict[str, Any]:
        return {"log": ["hello"]}

    g = StateGraph(LogState)
    g.add_node(greet)
    g.add_edge(START, "greet")
    graph = g.compile()

    assert "greet" in graph.nodes
    assert graph.invoke({"log": []}) == {"log": ["hello"]}


def test_set_entry_and_finish_point() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))
    g.add_node("b", _log("b"))
    g.set_entry_point("a")
    g.add_edge("a", "b")
    g.set_finish_point("b")

    assert g.compile().invoke({"log": []}) == {"log": ["a", "b"]}


def test_add_sequence_of_functions() -> None:
    g = StateGraph(LogState)
    g.add_sequence([_log("one"), _log("two"), _log("three")])
    g.add_edge(START, "one")

    assert g.compile().invoke({"log": []}) == {"log": ["one", "two", "three"]}


def test_add_sequence_of_named_pairs() -> None:
    g = StateGraph(LogState)
    g.add_sequence([("x", _log("x")), ("y", _log("y"))])
    g.add_edge(START, "x")

    assert g.compile().invoke({"log": []}) == {"log": ["x", "y"]}


def test_a_node_without_outgoing_edges_ends_the_run() -> None:
    g = StateGraph(LogState)
    g.add_node("only", _log("only"))
    g.add_edge(START, "only")

    assert g.compile().invoke({"log": []}) == {"log": ["only"]}


def test_a_node_may_take_the_config() -> None:
    seen: list[Any] = []

    def node(state: LogState, config: dict[str, Any]) -> dict[str, Any]:
        seen.append(config["configurable"]["thread_id"])
        return {"log": ["ok"]}

    g = StateGraph(LogState)
    g.add_node("node", node)
    g.add_edge(START, "node")
    config = thread()

    g.compile(checkpointer=InMemorySaver()).invoke({"log": []}, config)

    assert seen == [config["configurable"]["thread_id"]]


def test_one_compiled_graph_serves_many_threads() -> None:
    calls = Calls()
    graph = linear_graph(InMemorySaver(), calls)
    configs = [thread() for _ in range(3)]

    for i, config in enumerate(configs):
        graph.invoke({"log": [str(i)]}, config)

    assert [graph.get_state(c).values["log"][0] for c in configs] == ["0", "1", "2"]
    assert calls["a"] == 3


# --- conditional edges --------------------------------------------------------------------


class Route(TypedDict, total=False):
    choice: str
    log: list[str]


def _routed(path_map: Any) -> Any:
    g = StateGraph(Route)
    g.add_node("decide", lambda s: {"log": ["decide"]})
    g.add_node("left", lambda s: {"log": [*s["log"], "left"]})
    g.add_node("right", lambda s: {"log": [*s["log"], "right"]})
    g.add_edge(START, "decide")
    g.add_conditional_edges("decide", lambda s: s["choice"], path_map)
    return g.compile()


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("left", ["decide", "left"]), ("right", ["decide", "right"])],
)
def test_conditional_edges_with_a_path_map_list(choice: str, expected: list[str]) -> None:
    graph = _routed(["left", "right"])

    assert graph.invoke({"choice": choice})["log"] == expected


@pytest.mark.parametrize(
    ("choice", "expected"),
    [("go_left", ["decide", "left"]), ("go_right", ["decide", "right"]), ("stop", ["decide"])],
)
def test_conditional_edges_with_a_path_map_dict_and_end(choice: str, expected: list[str]) -> None:
    graph = _routed({"go_left": "left", "go_right": "right", "stop": END})

    assert graph.invoke({"choice": choice})["log"] == expected


def test_conditional_edge_returning_end() -> None:
    graph = _routed(None)

    assert graph.invoke({"choice": END})["log"] == ["decide"]


def test_conditional_entry_point() -> None:
    g = StateGraph(Route)
    g.add_node("left", lambda s: {"log": ["left"]})
    g.add_node("right", lambda s: {"log": ["right"]})
    g.add_conditional_edges(START, lambda s: s["choice"])

    assert g.compile().invoke({"choice": "right"}) == {"choice": "right", "log": ["right"]}


# --- Command from nodes -------------------------------------------------------------------


def test_command_goto_and_update_from_a_node() -> None:
    def decide(state: Route) -> Command[Any]:
        return Command(update={"log": ["decide"]}, goto=state["choice"])

    g = StateGraph(Route)
    g.add_node("decide", decide)  # no edges out: the Command routes
    g.add_node("left", lambda s: {"log": [*s["log"], "left"]})
    g.add_node("right", lambda s: {"log": [*s["log"], "right"]})
    g.add_edge(START, "decide")
    graph = g.compile()

    assert graph.invoke({"choice": "right"})["log"] == ["decide", "right"]
    assert graph.invoke({"choice": "left"})["log"] == ["decide", "left"]


def test_command_decided_after_an_interrupt() -> None:
    def decide(state: Route) -> Command[Any]:
        choice = interrupt("left or right?")
        return Command(update={"choice": choice, "log": ["decide"]}, goto=choice)

    g = StateGraph(Route)
    g.add_node("decide", decide, destinations=("left", "right"))
    g.add_node("left", lambda s: {"log": [*s["log"], "left"]})
    g.add_node("right", lambda s: {"log": [*s["log"], "right"]})
    g.add_edge(START, "decide")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()
    graph.invoke({}, config)

    assert graph.invoke(Command(resume="left"), config) == {
        "choice": "left",
        "log": ["decide", "left"],
    }


# --- validation ---------------------------------------------------------------------------


def test_edge_to_an_unknown_node_is_rejected_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))
    g.add_edge(START, "a")

    with pytest.raises(InvalidGraphError, match="nonexistent_target"):
        g.add_edge("a", "nonexistent_target")
        g.compile()


def test_edge_from_an_unknown_node_is_rejected_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))
    g.add_edge(START, "a")

    with pytest.raises(InvalidGraphError, match="phantom_source"):
        g.add_edge("phantom_source", "a")
        g.compile()


def test_join_with_an_unknown_source_is_rejected_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))
    g.add_node("c", _log("c"))
    g.add_edge(START, "a")

    with pytest.raises(InvalidGraphError, match="missing_branch"):
        g.add_edge(["a", "missing_branch"], "c")
        g.compile()


def test_conditional_path_map_to_an_unknown_node_is_rejected_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))
    g.add_edge(START, "a")

    with pytest.raises(InvalidGraphError, match="unknown_dest"):
        g.add_conditional_edges("a", lambda s: "x", {"x": "unknown_dest"})
        g.compile()


def test_a_graph_without_an_entry_point_is_rejected() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))

    with pytest.raises(InvalidGraphError, match="entry"):
        g.compile()


def test_a_duplicate_node_is_rejected_naming_it() -> None:
    g = StateGraph(LogState)
    g.add_node("twice_node", _log("x"))

    with pytest.raises(InvalidGraphError, match="twice_node"):
        g.add_node("twice_node", _log("y"))
        g.add_edge(START, "twice_node")
        g.compile()


@pytest.mark.parametrize("name", [START, END])
def test_reserved_node_names_are_rejected(name: str) -> None:
    g = StateGraph(LogState)

    with pytest.raises(InvalidGraphError, match=name):
        g.add_node(name, _log("x"))
        g.compile()


def test_end_cannot_be_an_edge_source() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))
    g.add_edge(START, "a")

    with pytest.raises(InvalidGraphError):
        g.add_edge(END, "a")
        g.compile()


def test_start_cannot_be_an_edge_target() -> None:
    g = StateGraph(LogState)
    g.add_node("a", _log("a"))
    g.add_edge(START, "a")

    with pytest.raises(InvalidGraphError):
        g.add_edge("a", START)
        g.compile()


# --- compiled graph -----------------------------------------------------------------------


def test_compile_sets_the_name() -> None:
    graph = linear_graph(None, Calls(), name="pipeline")

    assert graph.name == "pipeline"
    assert {"a", "b", "c"} <= set(graph.nodes)


def test_draw_mermaid_mentions_nodes_and_edges() -> None:
    g = StateGraph(LogState)
    g.add_node("fetch_data", _log("fetch_data"))
    g.add_node("send_report", _log("send_report"))
    g.add_node("retry_later", _log("retry_later"))
    g.add_edge(START, "fetch_data")
    g.add_conditional_edges("fetch_data", lambda s: "send_report", ["send_report", "retry_later"])
    g.add_edge("send_report", END)
    drawing = g.compile().get_graph()

    text = drawing.draw_mermaid()

    assert isinstance(text, str)
    for name in ("fetch_data", "send_report", "retry_later", START, END):
        assert name in text
    arrows = [ln for ln in text.splitlines() if "->" in ln]  # "-->" or dotted "-.->"
    assert any("fetch_data" in ln and "send_report" in ln for ln in arrows)
    assert any("fetch_data" in ln and "retry_later" in ln for ln in arrows)
    assert any("send_report" in ln and END in ln for ln in arrows)
    assert any(START in ln and "fetch_data" in ln for ln in arrows)
    assert isinstance(drawing.nodes, list) and len(drawing.nodes) >= 3
    assert isinstance(drawing.edges, list) and len(drawing.edges) >= 4


def test_with_checkpointer_returns_a_bound_copy() -> None:
    calls = Calls()
    original = approval_graph(None, calls)
    saver = InMemorySaver()

    bound = original.with_checkpointer(saver)
    config = thread()

    (pending,) = bound.invoke({}, config)["__interrupt__"]
    assert bound.invoke(Command(resume="ok"), config) == {"approval": "ok"}
    assert pending.value == "Do you approve this action?"
    with pytest.raises(CheckpointerRequiredError):
        original.invoke({}, thread())


def test_with_checkpointer_copies_do_not_share_threads() -> None:
    graph = approval_graph(InMemorySaver())
    other = graph.with_checkpointer(InMemorySaver())
    config = thread()
    graph.invoke({}, config)

    assert other.get_state(config).values == {}
    assert graph.get_state(config).interrupts != ()
