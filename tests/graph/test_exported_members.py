"""Pins the public surface of `app.graph`: adding or dropping a name must be deliberate."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import app.graph
from app.checkpoint import memory
from app.graph import (
    END,
    START,
    Command,
    Interrupt,
    RunResult,
    Send,
    StateSnapshot,
    StateTask,
)

# ENGINE.md's public names; `EmptyInputError` is listed there as "only if needed".
EXPECTED = [
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


def test_all_is_sorted_and_pinned() -> None:
    assert list(app.graph.__all__) == EXPECTED
    assert sorted(EXPECTED) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in app.graph.__all__:
        assert getattr(app.graph, name, None) is not None, name


def test_constants() -> None:
    assert START == "__start__"
    assert END == "__end__"
    assert Command.PARENT == "__parent__"


def test_memory_saver_alias() -> None:
    assert memory.MemorySaver is memory.InMemorySaver


def _field_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_record_shapes() -> None:
    assert StateSnapshot._fields == (
        "values",
        "next",
        "config",
        "metadata",
        "created_at",
        "parent_config",
        "tasks",
        "interrupts",
    )
    assert StateTask._fields == ("id", "name", "path", "error", "interrupts", "state", "result")
    assert _field_names(RunResult) == ["status", "values", "interrupts", "next", "checkpoint_id"]
    assert _field_names(Interrupt)[:5] == ["value", "id", "schema", "timeout", "default"]
    assert list(inspect.signature(Command).parameters)[:4] == ["graph", "update", "resume", "goto"]


def test_command_defaults() -> None:
    command: Command[Any] = Command()

    assert (command.graph, command.update, command.resume, command.goto) == (None, None, None, ())


def test_send_holds_node_and_arg() -> None:
    send = Send("worker", {"n": 1})

    assert (send.node, send.arg) == ("worker", {"n": 1})
    assert send == Send("worker", {"n": 1})


def test_interrupt_defaults() -> None:
    item = Interrupt(value="q", id="ab" * 16)

    assert (item.schema, item.timeout) == (None, None)


def test_run_result_is_frozen() -> None:
    result = RunResult(status="completed", values={}, interrupts=(), next=(), checkpoint_id=None)

    try:
        result.status = "interrupted"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("RunResult must be immutable")
