"""State schemas (TypedDict, dataclass, pydantic) and per-key reducers."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import START, InvalidUpdateError, Send, StateGraph
from tests.graph.graphs import LogState, thread


def _fan(state_schema: Any, writers: dict[str, Any], **kw: Any) -> Any:
    """START -> every writer in parallel."""
    g = StateGraph(state_schema, **kw)
    for name, fn in writers.items():
        g.add_node(name, fn)
        g.add_edge(START, name)
    return g.compile()


# --- reducers -----------------------------------------------------------------------------


def test_a_reducer_channel_starts_empty() -> None:
    seen: list[Any] = []

    def node(state: LogState) -> dict[str, Any]:
        seen.append(state["log"])
        return {"log": ["n"]}

    graph = _fan(LogState, {"node": node})

    assert graph.invoke({}) == {"log": ["n"]}
    assert seen == [[]]


def test_operator_add_folds_parallel_writes_in_task_order() -> None:
    graph = _fan(
        LogState,
        {"a": lambda s: {"log": ["a1", "a2"]}, "b": lambda s: {"log": ["b"]}},
    )

    assert graph.invoke({"log": ["in"]}) == {"log": ["in", "a1", "a2", "b"]}


def test_input_goes_through_the_reducer_on_an_existing_thread() -> None:
    g = StateGraph(LogState)
    g.add_node("n", lambda s: {"log": ["n"]})
    g.add_edge(START, "n")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    graph.invoke({"log": ["first"]}, config)

    assert graph.invoke({"log": ["second"]}, config) == {"log": ["first", "n", "second", "n"]}


def _merge(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    return {**left, **right}


def _max(left: int, right: int) -> int:
    return max(left, right)


class Scores(TypedDict, total=False):
    scores: Annotated[dict[str, int], _merge]
    best: Annotated[int, _max]


def test_custom_reducers() -> None:
    graph = _fan(
        Scores,
        {
            "a": lambda s: {"scores": {"x": 1}, "best": 7},
            "b": lambda s: {"scores": {"y": 2, "z": 9}, "best": 5},
        },
    )

    result = graph.invoke({"scores": {"z": 0}, "best": 3})

    assert result == {"scores": {"z": 9, "x": 1, "y": 2}, "best": 7}


class Plain(TypedDict, total=False):
    shared_key: str
    other: str


def test_two_writes_to_a_key_without_reducer_in_one_step_is_an_error() -> None:
    graph = _fan(Plain, {"a": lambda s: {"shared_key": "a"}, "b": lambda s: {"shared_key": "b"}})

    with pytest.raises(InvalidUpdateError, match="shared_key"):
        graph.invoke({})


def test_two_send_tasks_writing_a_plain_key_is_an_error() -> None:
    g = StateGraph(Plain)
    g.add_node("w", lambda arg: {"shared_key": arg})
    g.add_conditional_edges(START, lambda s: [Send("w", "p"), Send("w", "q")])

    with pytest.raises(InvalidUpdateError, match="shared_key"):
        g.compile().invoke({})


def test_a_key_without_reducer_keeps_the_last_value() -> None:
    g = StateGraph(Plain)
    g.add_node("a", lambda s: {"shared_key": "from a", "other": "kept"})
    g.add_node("b", lambda s: {"shared_key": "from b"})
    g.add_edge(START, "a")
    g.add_edge("a", "b")

    assert g.compile().invoke({"shared_key": "input"}) == {
        "shared_key": "from b",
        "other": "kept",
    }


def test_parallel_writes_to_different_plain_keys_are_fine() -> None:
    graph = _fan(Plain, {"a": lambda s: {"shared_key": "a"}, "b": lambda s: {"other": "b"}})

    assert graph.invoke({}) == {"shared_key": "a", "other": "b"}


# --- dataclass and pydantic state ---------------------------------------------------------


@dataclass
class DataState:
    topic: str
    count: int = 0
    log: Annotated[list[str], operator.add] = field(default_factory=list)


def test_dataclass_state() -> None:
    seen: list[Any] = []

    def step(state: DataState) -> dict[str, Any]:
        seen.append(state)
        return {"count": state.count + 1, "log": [state.topic]}

    g = StateGraph(DataState)
    g.add_node("step", step)
    g.add_edge(START, "step")

    result = g.compile().invoke({"topic": "t"})

    assert result == {"topic": "t", "count": 1, "log": ["t"]}
    assert isinstance(seen[0], DataState)
    assert (seen[0].count, seen[0].log) == (0, [])


class ModelState(BaseModel):
    topic: str
    count: int = 0
    log: Annotated[list[str], operator.add] = Field(default_factory=list)


def test_pydantic_state() -> None:
    seen: list[Any] = []

    def step(state: ModelState) -> dict[str, Any]:
        seen.append(state)
        return {"count": state.count + 1, "log": [state.topic]}

    g = StateGraph(ModelState)
    g.add_node("step", step)
    g.add_node("again", step)
    g.add_edge(START, "step")
    g.add_edge("step", "again")

    result = g.compile().invoke({"topic": "t"})

    assert result == {"topic": "t", "count": 2, "log": ["t", "t"]}
    assert all(isinstance(s, ModelState) for s in seen)
    assert [s.count for s in seen] == [0, 1]


def test_pydantic_state_with_a_checkpointer_round_trips() -> None:
    g = StateGraph(ModelState)
    g.add_node("step", lambda s: {"count": s.count + 1, "log": [s.topic]})
    g.add_edge(START, "step")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    graph.invoke({"topic": "t"}, config)

    assert graph.get_state(config).values == {"topic": "t", "count": 1, "log": ["t"]}


# --- input and output schemas -------------------------------------------------------------


class Full(TypedDict, total=False):
    question: str
    scratch: str
    answer: str


class In(TypedDict):
    question: str


class Out(TypedDict):
    answer: str


def test_output_schema_filters_what_invoke_returns() -> None:
    g = StateGraph(Full, input_schema=In, output_schema=Out)
    g.add_node("think", lambda s: {"scratch": "hmm", "answer": f"re: {s['question']}"})
    g.add_edge(START, "think")

    assert g.compile().invoke({"question": "why?"}) == {"answer": "re: why?"}


def test_a_conflicting_step_is_not_swallowed_by_a_retry() -> None:
    """The conflict stops the run; invoke(None) must not quietly end the thread instead."""

    class Conflict(TypedDict, total=False):
        shared_key: str
        after: str

    calls: list[str] = []

    def c(state: Conflict) -> dict[str, Any]:
        calls.append("c")
        return {"after": "c"}

    g = StateGraph(Conflict)
    g.add_node("a", lambda s: {"shared_key": "a"})
    g.add_node("b", lambda s: {"shared_key": "b"})
    g.add_node("c", c)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("a", "c")
    graph = g.compile(checkpointer=InMemorySaver())
    config = thread()

    with pytest.raises(InvalidUpdateError, match="shared_key"):
        graph.invoke({}, config)
    with pytest.raises(InvalidUpdateError, match="shared_key"):
        graph.invoke(None, config)

    assert calls == []
