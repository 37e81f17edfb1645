"""The benchmark's "start -> ask -> act" graph, written once for both libraries.

``ask`` pauses with interrupt() for a decision, ``act`` uses it. Storage per paused thread is
compared on this graph; `hitl serve` hosts it as ``bench_ask_act`` (``HITL_GRAPHS`` names
``bench.graphs:hitl_ask_act``), LangGraph builds it from its own names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from typing_extensions import TypedDict

ASK_ACT_INPUT = {"request": "refund order 1234 (59.90 EUR) to the customer's card"}


class AskActState(TypedDict, total=False):
    request: str
    decision: str
    result: str


def build_ask_act(state_graph: Any, start: str, end: str, interrupt: Callable[[Any], Any]) -> Any:
    """The uncompiled builder, from either library's StateGraph/START/END/interrupt."""

    def ask(state: AskActState) -> dict[str, str]:
        decision = interrupt({"question": "Approve this action?", "request": state["request"]})
        return {"decision": str(decision)}

    def act(state: AskActState) -> dict[str, str]:
        verb = "done" if state["decision"] == "yes" else "skipped"
        return {"result": f"{verb}: {state['request']}"}

    builder = state_graph(AskActState)
    builder.add_node("ask", ask)
    builder.add_node("act", act)
    builder.add_edge(start, "ask")
    builder.add_edge("ask", "act")
    builder.add_edge("act", end)
    return builder


def hitl_ask_act() -> Any:
    """Factory for hitl's registry (imports the engine only when the server loads it)."""
    from app.graph import END, START, StateGraph, interrupt

    return build_ask_act(StateGraph, START, END, interrupt).compile()


def langgraph_ask_act(checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt

    return build_ask_act(StateGraph, START, END, interrupt).compile(checkpointer=checkpointer)


def langgraph_approval(checkpointer: Any) -> Any:
    """The seed's one-node approval graph in LangGraph (the baseline of a round trip)."""
    from langgraph.graph import END, StateGraph
    from langgraph.types import interrupt

    class AgentState(TypedDict):
        approval: str

    def ask_for_approval(state: AgentState) -> dict[str, str]:
        return {"approval": interrupt("Do you approve this action?")}

    workflow = StateGraph(AgentState)
    workflow.add_node("approval_node", ask_for_approval)
    workflow.set_entry_point("approval_node")
    workflow.add_edge("approval_node", END)
    return workflow.compile(checkpointer=checkpointer)
