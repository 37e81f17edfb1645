"""stream(): "values" and "updates" modes, both at once, and interrupts in the stream."""

from __future__ import annotations

from typing import Any

from app.checkpoint.memory import InMemorySaver
from app.graph import Command, Interrupt
from tests.graph.graphs import (
    Calls,
    ask_then_log_graph,
    fanout_graph,
    linear_graph,
    parallel_graph,
    thread,
)

VALUES = [
    {"log": ["in"]},
    {"log": ["in", "a"]},
    {"log": ["in", "a", "b"]},
    {"log": ["in", "a", "b", "c"]},
]
UPDATES = [{"a": {"log": ["a"]}}, {"b": {"log": ["b"]}}, {"c": {"log": ["c"]}}]


def _interrupts(chunks: list[Any]) -> list[Interrupt]:
    found: list[Interrupt] = []
    for chunk in chunks:
        if isinstance(chunk, dict) and "__interrupt__" in chunk:
            assert isinstance(chunk["__interrupt__"], tuple)
            found.extend(chunk["__interrupt__"])
    return found


def test_values_mode_yields_the_input_then_the_state_after_each_step() -> None:
    graph = linear_graph(InMemorySaver(), Calls())

    assert list(graph.stream({"log": ["in"]}, thread(), stream_mode="values")) == VALUES


def test_updates_mode_yields_each_nodes_update() -> None:
    graph = linear_graph(InMemorySaver(), Calls())

    assert list(graph.stream({"log": ["in"]}, thread(), stream_mode="updates")) == UPDATES


def test_stream_without_a_checkpointer() -> None:
    graph = linear_graph(None, Calls())

    assert list(graph.stream({"log": ["in"]}, stream_mode="updates")) == UPDATES


def test_a_list_of_modes_yields_mode_tagged_pairs() -> None:
    graph = linear_graph(InMemorySaver(), Calls())

    pairs = list(graph.stream({"log": ["in"]}, thread(), stream_mode=["values", "updates"]))

    assert all(isinstance(p, tuple) and len(p) == 2 for p in pairs)
    assert {mode for mode, _ in pairs} == {"values", "updates"}
    assert [chunk for mode, chunk in pairs if mode == "values"] == VALUES
    assert [chunk for mode, chunk in pairs if mode == "updates"] == UPDATES


def test_updates_mode_reports_an_interrupt_as_a_tuple_chunk() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()

    chunks = list(graph.stream({"log": []}, config, stream_mode="updates"))

    assert chunks[0] == {"before": {"log": ["before"]}}
    assert chunks[-1] == {"__interrupt__": graph.get_state(config).interrupts}
    assert [i.value for i in _interrupts(chunks)] == ["continue?"]


def test_values_mode_reports_the_interrupt_with_the_state() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()

    chunks = list(graph.stream({"log": []}, config, stream_mode="values"))

    assert chunks[0] == {"log": []}
    assert _interrupts(chunks) == list(graph.get_state(config).interrupts)
    with_interrupt = [c for c in chunks if "__interrupt__" in c]
    assert with_interrupt[0]["log"] == ["before"]


def test_resuming_through_stream() -> None:
    calls = Calls()
    graph = ask_then_log_graph(InMemorySaver(), calls)
    config = thread()
    list(graph.stream({"log": []}, config, stream_mode="updates"))

    chunks = list(graph.stream(Command(resume="ok"), config, stream_mode="updates"))

    assert chunks == [{"ask": {"log": ["ask=ok"]}}, {"after": {"log": ["after"]}}]
    assert calls["before"] == 1


def test_parallel_interrupts_all_reach_the_stream() -> None:
    graph = parallel_graph(InMemorySaver(), Calls())
    config = thread()

    chunks = list(graph.stream({"log": []}, config, stream_mode="updates"))

    pending = graph.get_state(config).interrupts
    assert len(pending) == 2
    assert sorted(i.id for i in _interrupts(chunks)) == sorted(i.id for i in pending)
    assert {"c": {"log": ["c"]}} in chunks


def test_each_send_task_yields_its_own_update() -> None:
    graph = fanout_graph(InMemorySaver(), Calls(), ask=False)

    chunks = list(graph.stream({"items": ["x", "y"]}, thread(), stream_mode="updates"))

    reviews = [c["review"] for c in chunks if "review" in c]
    assert sorted(r["results"][0] for r in reviews) == ["x=auto", "y=auto"]
    assert chunks[-1] == {"collect": {"results": ["collected"]}}


def test_values_stream_of_a_resume_starts_with_the_current_state() -> None:
    graph = ask_then_log_graph(InMemorySaver(), Calls())
    config = thread()
    graph.invoke({"log": []}, config)

    chunks = list(graph.stream(Command(resume="ok"), config, stream_mode="values"))

    assert chunks[0] == {"log": ["before"]}
    assert chunks[-1] == {"log": ["before", "ask=ok", "after"]}
