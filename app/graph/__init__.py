"""hitl's graph engine: LangGraph-style state graphs with human-in-the-loop interrupts.

    from app.graph import StateGraph, START, END, interrupt, Command
    from app.checkpoint.memory import InMemorySaver

Imports only the standard library, typing_extensions and the checkpointer port
(`app.checkpoint.base`); pydantic and jsonschema are loaded only for answer schemas.
"""

from app.graph.errors import (
    CheckpointerRequiredError,
    EmptyInputError,
    GraphError,
    GraphInterrupt,
    GraphRecursionError,
    InvalidConfigError,
    InvalidGraphError,
    InvalidResumeError,
    InvalidUpdateError,
    RecursionLimitError,
)
from app.graph.interrupt import interrupt
from app.graph.state import StateGraph
from app.graph.types import (
    END,
    START,
    Command,
    Interrupt,
    RunResult,
    Send,
    StateSnapshot,
    StateTask,
)

__all__ = [  # noqa: RUF022 - plain sorted(), pinned by tests/graph/test_exported_members.py
    "CheckpointerRequiredError",
    "Command",
    "END",
    "EmptyInputError",
    "GraphError",
    "GraphInterrupt",
    "GraphRecursionError",
    "Interrupt",
    "InvalidConfigError",
    "InvalidGraphError",
    "InvalidResumeError",
    "InvalidUpdateError",
    "RecursionLimitError",
    "RunResult",
    "START",
    "Send",
    "StateGraph",
    "StateSnapshot",
    "StateTask",
    "interrupt",
]
