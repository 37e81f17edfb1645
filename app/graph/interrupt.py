"""``interrupt()`` and the typed run context it reads (a ContextVar, no magic config keys).

While a node runs, `_current_task` holds its `TaskScope`: the answers the task already has
(its stored RESUME list) and a call counter. The k-th ``interrupt()`` call of the task returns
answer k if there is one, and otherwise raises `GraphInterrupt` with a question whose id hashes
the task's namespace and k (stable across re-runs from the same checkpoint).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from app.checkpoint.base import Checkpointer, InterruptRecord
from app.graph.answers import convert_answer, json_schema_of
from app.graph.errors import (
    CheckpointerRequiredError,
    GraphInterrupt,
    InvalidConfigError,
    NotInGraphError,
)
from app.graph.ids import interrupt_id
from app.graph.stream import StreamSink
from app.graph.types import MISSING, Interrupt

__all__ = [
    "RunScope",
    "TaskScope",
    "current_task",
    "interrupt",
    "open_scope",
    "record_to_interrupt",
]


@dataclass(slots=True)
class RunScope:
    """One run of one graph (the root, or a subgraph inside a parent task)."""

    saver: Checkpointer | None
    thread_id: str | None
    ns: str
    config: dict[str, Any]
    durability: str
    recursion_limit: int
    sink: StreamSink | None = None
    ns_path: tuple[str, ...] = ()
    parents: dict[str, str] = field(default_factory=dict)
    checkpoint_id: str | None = None


@dataclass(slots=True)
class TaskScope:
    """One task run: what ``interrupt()`` needs to answer or to pause."""

    run: RunScope
    name: str
    task_id: str
    ns: str
    answers: list[Any]
    counter: int = 0
    records: list[InterruptRecord] = field(default_factory=list)


_current_task: ContextVar[TaskScope | None] = ContextVar("hitl_current_task", default=None)


def current_task() -> TaskScope | None:
    """Return the task running in this context, or None outside a node."""
    return _current_task.get()


def open_scope(
    checkpointer: Checkpointer | None,
    config: dict[str, Any] | None,
    durability: str | None,
    sink: StreamSink | None,
    *,
    subgraph: bool = False,
) -> tuple[RunScope, str | None, bool]:
    """Return the scope of a new run, the checkpoint id it starts at, and whether it is nested.

    Inside a running task, a graph without a checkpointer of its own (or any graph added as a
    node, ``subgraph=True``) runs as a subgraph: the parent's saver and thread, and the parent
    task's namespace as its own (``node:task_id``).

    Raises:
        InvalidConfigError: a checkpointer is set but the config has no thread_id.
    """
    parent = current_task()
    if parent is not None and (checkpointer is None or subgraph):
        run = parent.run
        scope = RunScope(
            run.saver,
            run.thread_id,
            parent.ns,
            run.config,
            run.durability,
            run.recursion_limit,
            run.sink if run.sink is not None and run.sink.subgraphs else None,
            tuple(parent.ns.split("|")),
            {**run.parents, run.ns: run.checkpoint_id or ""},
        )
        return scope, None, True
    cfg = config or {}
    conf = cfg.get("configurable") or {}
    thread = conf.get("thread_id")
    if checkpointer is not None and thread is None:
        raise InvalidConfigError(
            "A checkpointer is set: the config needs {'configurable': {'thread_id': ...}}"
        )
    ns = conf.get("checkpoint_ns") or ""
    scope = RunScope(
        checkpointer,
        None if thread is None else str(thread),
        ns,
        cfg,
        durability or "sync",
        int(cfg.get("recursion_limit", 25)),
        sink,
        tuple(ns.split("|")) if ns else (),
    )
    return scope, conf.get("checkpoint_id"), False


def record_to_interrupt(record: InterruptRecord) -> Interrupt:
    """Return the public `Interrupt` for a stored record."""
    return Interrupt(
        record["value"],
        record["id"],
        record.get("schema"),
        record.get("timeout"),
        record.get("default") if record.get("has_default") else MISSING,
    )


def interrupt(
    value: Any,
    *,
    schema: Any = None,
    timeout: float | None = None,
    default: Any = MISSING,
) -> Any:
    """Pause the graph and ask a person; return their answer when the thread is resumed.

    The first time, this raises `GraphInterrupt` and the run stops; the node re-runs from its
    first line when the thread is resumed, and this call then returns the answer. Several
    calls in one node are answered in call order.

    Args:
        value: the question (any JSON-serializable value).
        schema: the expected answer's shape: a JSON Schema dict, a pydantic model or a type.
            The answer is validated on resume; a pydantic model yields an instance.
        timeout: seconds after which the service answers with ``default`` (or fails the
            thread when no default is given).
        default: the answer used on timeout.

    Returns:
        The answer given with ``Command(resume=...)`` (or a plain value, see D2).

    Raises:
        GraphInterrupt: no answer yet; the engine records the question (not an Exception).
        CheckpointerRequiredError: the graph has no checkpointer (an unanswerable question).
        NotInGraphError: called outside a running node (a RuntimeError).
    """
    task = _current_task.get()
    if task is None:
        raise NotInGraphError("interrupt() can only be called inside a node of a running graph")
    if task.run.saver is None:
        raise CheckpointerRequiredError(
            "interrupt() needs a checkpointer to save the paused thread: pass `checkpointer=` "
            "to compile() (for example compile(checkpointer=InMemorySaver()))"
        )
    k = task.counter
    task.counter = k + 1
    json_schema = json_schema_of(schema)
    iid = interrupt_id(task.ns, k)
    has_default = default is not MISSING
    record: InterruptRecord = {
        "id": iid,
        "value": value,
        "node": task.name,
        "ns": task.ns,
        "schema": json_schema,
        "timeout": timeout,
        "has_default": has_default,
        "default": default if has_default else None,
    }
    task.records.append(record)
    if k < len(task.answers):
        return convert_answer(task.answers[k], schema, iid)
    raise GraphInterrupt((record_to_interrupt(record),), (record,))
