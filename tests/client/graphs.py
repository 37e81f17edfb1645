"""Graphs the ``hitl serve`` under test hosts (``HITL_GRAPHS`` names them as ``tests.client.graphs:...``).

One per kind of answer form the inbox page builds, plus a gated one for `wait`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from typing_extensions import TypedDict

from app.graph import END, START, StateGraph, interrupt


class State(TypedDict, total=False):
    topic: str
    answer: Any
    done: bool


def _one_question(name: str, ask: Any) -> Any:
    def node(state: State) -> dict[str, Any]:
        return {"answer": ask(state), "done": True}

    node.__name__ = name
    builder = StateGraph(State)
    builder.add_node(name, node)
    builder.add_edge(START, name)
    builder.add_edge(name, END)
    return builder.compile(name=name)


#: An object answer: ``{"count": <integer >= 0>}``.
COUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "minimum": 0, "title": "How many"},
        "note": {"type": "string", "maxLength": 200},
    },
    "required": ["count"],
    "additionalProperties": False,
}

numbers = _one_question(
    "ask_count",
    lambda s: interrupt(f"How many {s.get('topic', 'items')}?", schema=COUNT_SCHEMA),
)
colors = _one_question(
    "pick_color",
    lambda s: interrupt(
        "Which colour should the banner be?",
        schema={"type": "string", "enum": ["red", "green", "blue"]},
    ),
)
confirm = _one_question(
    "confirm_send",
    lambda s: interrupt(
        {"question": "Send the newsletter to 12,000 subscribers?", "topic": s.get("topic")},
        schema={"type": "boolean"},
        timeout=3600.0,
        default=False,
    ),
)
text = _one_question(
    "write_reply",
    lambda s: interrupt(
        "Write the reply to the customer", schema={"type": "string", "minLength": 3}
    ),
)


class GateState(TypedDict, total=False):
    gate: str
    done: bool


def _slow(state: GateState) -> dict[str, Any]:
    """Run until the file named ``gate`` exists (at most 60 s): the test decides when it ends."""
    gate = Path(state["gate"])
    deadline = time.monotonic() + 60
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"done": True}


def _build_slow() -> Any:
    builder = StateGraph(GateState)
    builder.add_node("slow_step", _slow)
    builder.add_edge(START, "slow_step")
    builder.add_edge("slow_step", END)
    return builder.compile(name="slow")


slow = _build_slow()

#: ``HITL_GRAPHS`` for the server under test: the bundled examples and the graphs above.
GRAPHS = ",".join(
    [
        "approval=app.graphs.approval:graph",
        "review=app.graphs.review:graph",
        *(
            f"{name}=tests.client.graphs:{name}"
            for name in ("numbers", "colors", "confirm", "text", "slow")
        ),
    ]
)
