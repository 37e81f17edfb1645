"""The seed's example, verbatim except its import lines: it must run and print what it promises."""

import re
import uuid

import pytest
from typing_extensions import TypedDict

from app.checkpoint.memory import InMemorySaver
from app.graph import END, START, Interrupt, StateGraph, interrupt

ID = re.compile(r"^[0-9a-f]{32}$")


def test_seed_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    # --- the seed, verbatim (imports moved to the top of this module) ------------------------
    class AgentState(TypedDict):
        approval: str

    def ask_for_approval(state):
        print("---ASKING FOR APPROVAL---")
        # The value passed to interrupt() is sent to the user.
        response = interrupt("Do you approve this action?")

        # When resumed, `response` will be the value the user provides.
        return {"approval": response}

    # A checkpointer is required for interrupts.
    checkpointer = InMemorySaver()

    workflow = StateGraph(AgentState)
    workflow.add_node("approval_node", ask_for_approval)
    workflow.set_entry_point("approval_node")
    workflow.add_edge("approval_node", END)

    app = workflow.compile(checkpointer=checkpointer)

    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    result = app.invoke(None, config)

    print(result)

    user_response = "Yes, I approve."
    resume_result = app.invoke(user_response, config)

    print(resume_result)
    # --- end of the seed ---------------------------------------------------------------------

    assert START == "__start__"
    (pending,) = result["__interrupt__"]
    assert set(result) == {"__interrupt__"}
    assert isinstance(result["__interrupt__"], tuple)
    assert pending == Interrupt(value="Do you approve this action?", id=pending.id)
    assert ID.match(pending.id)
    assert resume_result == {"approval": "Yes, I approve."}

    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "---ASKING FOR APPROVAL---",
        f"{{'__interrupt__': (Interrupt(value='Do you approve this action?', id='{pending.id}'),)}}",
        "---ASKING FOR APPROVAL---",
        "{'approval': 'Yes, I approve.'}",
    ]
    assert app.get_state(config).next == ()
