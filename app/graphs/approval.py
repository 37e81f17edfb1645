"""The seed's example as a hosted graph: one node asks for approval, then the graph ends.

``graph`` is compiled with an InMemorySaver so the module runs on its own
(``python -m app.graphs.approval`` prints what the seed tutorial shows); the service binds its
own saver with ``graph.with_checkpointer(...)``.
"""

from __future__ import annotations

import uuid
from typing import Any

from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import END, StateGraph, interrupt


class AgentState(TypedDict):
    """The final decision made by the human."""

    approval: str


def ask_for_approval(state: AgentState) -> dict[str, Any]:
    """Ask once; on resume ``interrupt()`` returns the person's answer."""
    print("---ASKING FOR APPROVAL---")
    response = interrupt("Do you approve this action?")
    return {"approval": response}


def build() -> StateGraph:
    """The builder, for callers that compile it with their own checkpointer."""
    workflow = StateGraph(AgentState)
    workflow.add_node("approval_node", ask_for_approval)
    workflow.set_entry_point("approval_node")
    workflow.add_edge("approval_node", END)
    return workflow


graph = build().compile(checkpointer=InMemorySaver(), name="approval")


def main() -> None:
    """Run the seed's two calls and print what it prints."""
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    result = graph.invoke(None, config)
    print(result)
    resume_result = graph.invoke("Yes, I approve.", config)
    print(resume_result)


if __name__ == "__main__":
    main()
