"""Quick checks of engine corners the behaviour suites touch lightly (the engine author's own)."""

from __future__ import annotations

import operator
import threading
import uuid
from typing import Annotated, Any

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from app.checkpoint.base import Checkpoint
from app.checkpoint.memory import InMemorySaver
from app.graph import (
    END,
    START,
    Command,
    Interrupt,
    InvalidResumeError,
    RunResult,
    StateGraph,
    interrupt,
)


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def _leaf() -> Any:
    def ask(state: Log) -> dict[str, Any]:
        return {"log": [f"leaf={interrupt('leaf?')}"]}

    g = StateGraph(Log)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    return g.compile()


def _two_levels(saver: Any) -> Any:
    mid = StateGraph(Log)
    mid.add_node("leaf", _leaf())
    mid.add_edge(START, "leaf")
    root = StateGraph(Log)
    root.add_node("mid", mid.compile())
    root.add_edge(START, "mid")
    return root.compile(checkpointer=saver)


def test_two_level_subgraph_interrupt_resumes_from_the_root() -> None:
    graph = _two_levels(InMemorySaver())
    config = cfg()
    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]
    state = graph.get_state(config)
    assert state.interrupts == (pending,)
    assert state.next == ("mid",)
    again = graph.invoke(None, config)["__interrupt__"]
    assert again == (pending,)  # same question, same id, across re-runs

    done = graph.invoke(Command(resume={pending.id: "yes"}), config)

    assert done["log"] == ["leaf=yes"]
    assert graph.get_state(config).next == ()
    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={pending.id: "twice"}), config)
    assert err.value.reason == "not_pending"


def test_plain_value_answers_a_nested_question() -> None:
    graph = _two_levels(InMemorySaver())
    config = cfg()
    graph.invoke({"log": []}, config)
    assert graph.invoke("ok", config)["log"] == ["leaf=ok"]


def test_subgraph_stream_and_nested_snapshot() -> None:
    graph = _two_levels(InMemorySaver())
    config = cfg()
    chunks = list(graph.stream({"log": []}, config, stream_mode="updates", subgraphs=True))
    namespaces = [ns for ns, _ in chunks]
    assert () in namespaces
    assert any(len(ns) == 2 for ns in namespaces)  # the leaf's chunk, two levels down
    state = graph.get_state(config, subgraphs=True)
    (task,) = state.tasks
    assert task.state.next == ("leaf",)
    assert task.state.tasks[0].state.interrupts == state.interrupts


def test_command_parent_from_a_nested_subgraph_node() -> None:
    def jump(state: Log) -> Command[Any]:
        return Command(graph=Command.PARENT, goto="after", update={"log": ["inner"]})

    sub = StateGraph(Log)
    sub.add_node("jump", jump)
    sub.add_edge(START, "jump")
    root = StateGraph(Log)
    root.add_node("sub", sub.compile())
    root.add_node("after", lambda s: {"log": ["after"]})
    root.add_edge(START, "sub")
    graph = root.compile()
    assert graph.invoke({"log": []}) == {"log": ["inner", "after"]}


def test_command_goto_and_updates_on_an_interrupted_thread() -> None:
    def ask(state: Log) -> dict[str, Any]:
        return {"log": [f"ask={interrupt('q')}"]}

    g = StateGraph(Log)
    g.add_node("ask", ask)
    g.add_node("extra", lambda s: {"log": ["extra"]})
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = cfg()
    graph.invoke({"log": []}, config)
    graph.invoke(Command(update={"log": ["u1"]}), config)
    graph.invoke(Command(update={"log": ["u2"]}, goto="extra"), config)
    assert graph.get_state(config).values["log"] == ["u1", "u2"]

    done = graph.invoke(Command(resume="a"), config)

    assert done["log"] == ["u1", "u2", "ask=a", "extra"]


def test_run_result_statuses_and_head_ids() -> None:
    graph = _two_levels(InMemorySaver())
    config = cfg()

    async def go() -> tuple[RunResult, RunResult]:
        first = await graph.arun({"log": []}, config)
        second = await graph.arun(Command(resume="y"), config)
        return first, second

    import asyncio

    first, second = asyncio.run(go())
    assert first.status == "interrupted"
    assert first.next == ("mid",)
    assert len(first.interrupts) == 1
    assert second.status == "completed"
    assert second.values == {"log": ["leaf=y"]}
    assert second.checkpoint_id == graph.get_state(config).config["configurable"]["checkpoint_id"]


def test_async_durability_saves_every_checkpoint() -> None:
    def build() -> Any:
        g = StateGraph(Log)
        g.add_sequence([("a", lambda s: {"log": ["a"]}), ("b", lambda s: {"log": ["b"]})])
        g.add_edge(START, "a")
        return g.compile(checkpointer=InMemorySaver())

    steps = {}
    for mode in ("sync", "async", "exit"):
        graph, config = build(), cfg()
        assert graph.invoke({"log": []}, config, durability=mode) == {"log": ["a", "b"]}
        steps[mode] = [s.metadata["step"] for s in graph.get_state_history(config)]
    assert steps["sync"] == steps["async"] == [1, 0, -1]
    assert steps["exit"] == [1]


class Approval(BaseModel):
    ok: bool
    note: str = ""


def test_pydantic_answer_schema_is_stored_as_json_schema_and_validated() -> None:
    seen: list[Any] = []

    def ask(state: Log) -> dict[str, Any]:
        answer = interrupt("ok?", schema=Approval, timeout=60, default={"ok": False})
        seen.append(answer)
        return {"log": [str(answer.ok)]}

    g = StateGraph(Log)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = cfg()
    (pending,) = graph.invoke({"log": []}, config)["__interrupt__"]
    assert pending.schema is not None and pending.schema["required"] == ["ok"]
    assert (pending.timeout, pending.default) == (60, {"ok": False})
    assert "timeout=60" in repr(pending)
    before = graph.get_state(config)

    with pytest.raises(InvalidResumeError) as err:
        graph.invoke(Command(resume={"ok": "maybe"}), config)

    assert err.value.reason == "invalid_answer"
    assert err.value.errors and err.value.errors[0]["interrupt_id"] == pending.id
    assert graph.get_state(config) == before
    assert graph.invoke(Command(resume={"ok": True}), config) == {"log": ["True"]}
    assert seen == [Approval(ok=True)]


def test_a_lone_sync_node_runs_on_the_calling_thread_parallel_ones_do_not() -> None:
    where: dict[str, int] = {}

    def node(name: str) -> Any:
        def fn(state: Log) -> dict[str, Any]:
            where[name] = threading.get_ident()
            return {"log": [name]}

        return fn

    g = StateGraph(Log)
    g.add_node("solo", node("solo"))
    g.add_node("p1", node("p1"))
    g.add_node("p2", node("p2"))
    g.add_edge(START, "solo")
    g.add_edge("solo", "p1")
    g.add_edge("solo", "p2")
    assert g.compile().invoke({"log": []}) == {"log": ["solo", "p1", "p2"]}
    assert where["solo"] == threading.get_ident()
    assert where["p1"] != threading.get_ident()


def test_memory_saver_copies_the_values_mapping() -> None:
    saver = InMemorySaver()
    values = {"log": ["a"]}
    saver.put(Checkpoint("t", "", "1", None, -1, "input", values))
    values["log"] = ["changed"]
    stored = saver.get_tuple("t")
    assert stored is not None and stored.checkpoint.values == {"log": ["a"]}


def test_drawing_and_graph_shape() -> None:
    def ask(state: Log) -> dict[str, Any]:
        return {}

    g = StateGraph(Log)
    g.add_node("approval_node", ask)
    g.set_entry_point("approval_node")
    g.add_edge("approval_node", END)
    shape = g.compile().get_graph()
    assert shape.nodes == [START, "approval_node", END]
    assert [(e.source, e.target) for e in shape.edges] == [
        (START, "approval_node"),
        ("approval_node", END),
    ]
    text = shape.draw_mermaid()
    assert "\t__start__ --> approval_node;\n" in text
    assert "\tapproval_node --> __end__;\n" in text


def test_fork_from_an_interrupted_checkpoint_asks_again_with_a_new_id() -> None:
    def ask(state: Log) -> dict[str, Any]:
        return {"log": [f"ask={interrupt('q')}"]}

    g = StateGraph(Log)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    graph = g.compile(checkpointer=InMemorySaver())
    config = cfg()
    (first,) = graph.invoke({"log": []}, config)["__interrupt__"]
    paused_at = graph.get_state(config).config
    graph.invoke(Command(resume="one"), config)

    (second,) = graph.invoke(None, paused_at)["__interrupt__"]

    assert second.id != first.id
    assert graph.invoke(Command(resume="two"), config) == {"log": ["ask=two"]}
    assert isinstance(second, Interrupt)


async def test_async_callers_run_a_lone_sync_node_off_the_event_loop() -> None:
    """Under ainvoke (the worker) a slow sync node must not stall the loop's other work."""
    import asyncio
    import threading

    from typing_extensions import TypedDict

    from app.graph import END, START, StateGraph

    class S(TypedDict):
        x: int

    gate = threading.Event()

    def slow(state: S) -> S:
        assert gate.wait(5), "the event loop was blocked by a sync node"
        return {"x": state["x"] + 1}

    g = StateGraph(S)
    g.add_node("slow", slow)
    g.add_edge(START, "slow")
    g.add_edge("slow", END)
    graph = g.compile()

    async def open_gate() -> None:
        await asyncio.sleep(0.01)
        gate.set()

    result, _ = await asyncio.wait_for(asyncio.gather(graph.ainvoke({"x": 1}), open_gate()), 10)
    assert result == {"x": 2}


def test_sync_callers_run_a_lone_sync_node_on_the_calling_thread() -> None:
    import threading

    from typing_extensions import TypedDict

    from app.graph import END, START, StateGraph

    class S(TypedDict):
        where: str

    def here(state: S) -> S:
        return {"where": threading.current_thread().name}

    g = StateGraph(S)
    g.add_node("here", here)
    g.add_edge(START, "here")
    g.add_edge("here", END)
    assert g.compile().invoke({"where": ""}) == {"where": threading.current_thread().name}
