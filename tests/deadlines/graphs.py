"""Graphs with deadlines, hosted by the API under test."""

from __future__ import annotations

import threading
from typing import Any

from typing_extensions import TypedDict

from app.graph import END, START, StateGraph, interrupt

#: Every answer a node received (the race test checks that the graph saw exactly one).
SEEN: dict[str, list[Any]] = {}
_LOCK = threading.Lock()

DECISION = {"type": "object", "properties": {"approved": {"type": "boolean"}}}


class State(TypedDict, total=False):
    key: str
    timeout: float
    decision: Any


def _ask(with_default: bool) -> Any:
    def ask(state: State) -> dict[str, Any]:
        options: dict[str, Any] = {"schema": DECISION, "timeout": state.get("timeout", 0.5)}
        if with_default:
            options["default"] = {"approved": False, "by": "deadline"}
        answer = interrupt({"question": "approve?", "key": state.get("key")}, **options)
        with _LOCK:
            SEEN.setdefault(state.get("key", ""), []).append(answer)
        return {"decision": answer}

    return ask


def _graph(with_default: bool) -> Any:
    builder = StateGraph(State)
    builder.add_node("ask", _ask(with_default))
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder.compile()


def deadline_graphs() -> dict[str, Any]:
    return {"timed_default": _graph(True), "timed_strict": _graph(False)}
