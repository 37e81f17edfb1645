"""Graphs the API tests host (besides the bundled examples)."""

from __future__ import annotations

import operator
import threading
from typing import Annotated, Any

from typing_extensions import TypedDict

from app.graph import END, START, StateGraph, interrupt


class AgentState(TypedDict, total=False):
    approval: str


def ask_for_approval(state: AgentState) -> dict[str, Any]:
    """The seed's node, unchanged but for the import."""
    response = interrupt("Do you approve this action?")
    return {"approval": response}


def seed_graph() -> Any:
    workflow = StateGraph(AgentState)
    workflow.add_node("approval_node", ask_for_approval)
    workflow.set_entry_point("approval_node")
    workflow.add_edge("approval_node", END)
    return workflow.compile()


class ParallelState(TypedDict, total=False):
    answers: Annotated[list[str], operator.add]
    summary: str


#: Every answer a node of the parallel graph received, across all runs (the test checks "once").
SEEN: list[tuple[str, Any]] = []
_SEEN_LOCK = threading.Lock()


def _asker(name: str) -> Any:
    def node(state: ParallelState) -> dict[str, Any]:
        answer = interrupt({"reviewer": name, "question": f"{name}: approve?"})
        with _SEEN_LOCK:
            SEEN.append((name, answer))
        return {"answers": [f"{name}={answer}"]}

    node.__name__ = name
    return node


def summarize(state: ParallelState) -> dict[str, Any]:
    return {"summary": ",".join(sorted(state.get("answers", [])))}


def parallel_graph() -> Any:
    builder = StateGraph(ParallelState)
    builder.add_node("left", _asker("left"))
    builder.add_node("right", _asker("right"))
    builder.add_node("summarize", summarize)
    builder.add_edge(START, "left")
    builder.add_edge(START, "right")
    builder.add_edge(["left", "right"], "summarize")
    builder.add_edge("summarize", END)
    return builder.compile()


class CountState(TypedDict, total=False):
    count: int
    answer: Any


def ask_number(state: CountState) -> dict[str, Any]:
    answer = interrupt(
        "How many?",
        schema={
            "type": "object",
            "properties": {"count": {"type": "integer", "minimum": 0}},
            "required": ["count"],
            "additionalProperties": False,
        },
    )
    return {"count": answer["count"], "answer": answer}


def schema_graph() -> Any:
    builder = StateGraph(CountState)
    builder.add_node("ask_number", ask_number)
    builder.add_edge(START, "ask_number")
    builder.add_edge("ask_number", END)
    return builder.compile()


class FailState(TypedDict, total=False):
    approval: str


def explode(state: FailState) -> dict[str, Any]:
    answer = interrupt("Shall I explode?")
    if answer == "boom":
        raise ValueError("the node exploded on purpose")
    return {"approval": answer}


def failing_graph() -> Any:
    builder = StateGraph(FailState)
    builder.add_node("explode", explode)
    builder.add_edge(START, "explode")
    builder.add_edge("explode", END)
    return builder.compile()


class BlobState(TypedDict, total=False):
    blob: Any


def store_object(state: BlobState) -> dict[str, Any]:
    return {"blob": object()}  # cannot be stored as JSON


def unstorable_graph() -> Any:
    builder = StateGraph(BlobState)
    builder.add_node("store_object", store_object)
    builder.add_edge(START, "store_object")
    builder.add_edge("store_object", END)
    return builder.compile()


def test_graphs() -> dict[str, Any]:
    """Name -> compiled graph, for `GraphRegistry`."""
    return {
        "approval": seed_graph(),
        "parallel": parallel_graph(),
        "numbers": schema_graph(),
        "failing": failing_graph(),
        "unstorable": unstorable_graph(),
    }


test_graphs.__test__ = False  # type: ignore[attr-defined]
