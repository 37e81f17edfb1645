"""The checkpointer port: the records the engine stores and the protocol a saver implements.

Pure: no I/O, no third-party imports. The engine (`app.graph`) imports only this module of
`app.checkpoint`; savers (`memory.py`, `sql.py`) implement `Checkpointer`.

Model, in short:
    A *checkpoint* is the state of one thread (and one namespace: "" at the root,
    ``"node:task_id"`` for a subgraph) between two supersteps: the channel values and the
    tasks that the next step will run. While that step runs, each task's outcome is saved as
    *pending writes* against the checkpoint (its state update and routes when it finished,
    its interrupts when it paused, its error when it failed, the answers it received).
    When every task of the step has finished, the engine folds the writes into a new
    checkpoint, which becomes the head.

Invariants every saver keeps (the conformance suite in ``tests/checkpoint/conformance.py``
checks them):
    * Checkpoint ids are unique and sort (as strings) in creation order within a thread; the
      head of ``(thread_id, ns)`` is the checkpoint with the greatest id.
    * ``aput`` of an existing id replaces that checkpoint (idempotent).
    * ``aput_writes`` replaces, per ``(task_id, channel)``, any earlier write of that pair and
      keeps the order in which a task's channels were first written.
    * Values round-trip equal (savers that serialize use ``app.checkpoint.serde``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import threading
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

__all__ = [
    "ERROR",
    "INTERRUPT",
    "NULL_TASK_ID",
    "RESUME",
    "ROUTE",
    "Checkpoint",
    "CheckpointTuple",
    "Checkpointer",
    "InterruptRecord",
    "PendingWrite",
    "SyncCheckpointerMixin",
    "TaskSpec",
    "run_sync",
]

#: Task id of thread-level writes that come from input (``Command(update=...)``), not a task.
NULL_TASK_ID = "0" * 32

# Special write channels. Every other channel name is a state key.
#: Written when a task finished: the list of its routes (node names and ``Send``-like dicts).
ROUTE = "__route__"
#: Written when a task paused: a list of `InterruptRecord`, in call order.
INTERRUPT = "__interrupt__"
#: The answers a task has received, a list in ``interrupt()`` call order.
RESUME = "__resume__"
#: Written when a task failed: ``{"type": ..., "message": ...}``.
ERROR = "__error__"


class InterruptRecord(TypedDict):
    """One ``interrupt()`` call as stored: what was asked and how it may be answered."""

    id: str
    """32 lowercase hex characters; stable for the same pending question."""
    value: Any
    """The question (any serializable value)."""
    node: str
    """Name of the node that asked."""
    ns: str
    """Checkpoint namespace of the asking task ("" at the root)."""
    schema: dict[str, Any] | None
    """JSON Schema the answer must satisfy, or None."""
    timeout: float | None
    """Seconds after which the service answers with ``default``; None for no deadline."""
    has_default: bool
    """Whether ``default`` was given (None is a valid default)."""
    default: Any


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task that a checkpoint schedules for the next step.

    ``path`` is ``("pull", node)`` for a task triggered by an edge and ``("push", index)`` for
    one started by a ``Send``; ``arg`` is the Send's argument (None for pull tasks).
    """

    id: str
    name: str
    path: tuple[str | int, ...]
    arg: Any = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state of a thread between two supersteps.

    ``values`` holds only channels that have a value. ``tasks`` are what the next step runs,
    in task order. ``extra`` is engine bookkeeping (join barriers, breakpoint markers) that
    savers store as-is. ``metadata`` is user-visible and JSON-serializable.
    """

    thread_id: str
    ns: str
    id: str
    parent_id: str | None
    step: int
    source: str
    values: Mapping[str, Any]
    tasks: tuple[TaskSpec, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: str = ""


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """One write saved against a checkpoint during the step that follows it."""

    task_id: str
    channel: str
    value: Any


@dataclass(frozen=True, slots=True)
class CheckpointTuple:
    """A checkpoint with its pending writes, in the order they were first written."""

    checkpoint: Checkpoint
    writes: tuple[PendingWrite, ...] = ()


@runtime_checkable
class Checkpointer(Protocol):
    """What the engine needs from storage. Async at its core; the runner is its only caller."""

    async def aget_tuple(
        self, thread_id: str, ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        """Return the checkpoint ``checkpoint_id`` (the head when None) with its writes.

        Returns:
            None when the thread (or that checkpoint) does not exist.
        """
        ...

    async def alist(
        self,
        thread_id: str,
        ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
    ) -> list[CheckpointTuple]:
        """Return the thread's checkpoints in ``ns``, newest first, each with its writes.

        Args:
            before: only checkpoints whose id sorts before this one (for pagination).
            limit: at most this many.
        """
        ...

    async def aput(self, checkpoint: Checkpoint) -> None:
        """Store a checkpoint; storing the same id again replaces it.

        Raises:
            app.checkpoint.serde.SerializationError: a value cannot be stored; nothing is
                written.
        """
        ...

    async def aput_writes(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[str, Any]],
    ) -> None:
        """Store a task's writes against a checkpoint, replacing earlier ones per channel.

        Raises:
            app.checkpoint.serde.SerializationError: a value cannot be stored; nothing is
                written.
        """
        ...

    async def adelete_thread(self, thread_id: str) -> None:
        """Remove every checkpoint and write of a thread, in every namespace."""
        ...


_T = TypeVar("_T")
_thread_state = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_state, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_state.loop = loop
    return loop


def run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from synchronous code.

    Reuses one event loop per OS thread, so a sync call pays neither for a new loop nor
    for a thread hop. Called from inside a running loop (a sync node that invokes a graph,
    a notebook), it runs the coroutine on a helper thread with the caller's context, so
    context variables (the current run) carry over.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _thread_loop().run_until_complete(coro)
    ctx = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hitl-sync") as pool:
        # A fresh loop, closed when done: the helper thread does not outlive this call.
        return pool.submit(ctx.run, asyncio.run, coro).result()


class SyncCheckpointerMixin:
    """Sync wrappers over a saver's async methods, for scripts and tests."""

    def get_tuple(
        self: Checkpointer, thread_id: str, ns: str = "", checkpoint_id: str | None = None
    ) -> CheckpointTuple | None:
        return run_sync(self.aget_tuple(thread_id, ns, checkpoint_id))

    def list(
        self: Checkpointer,
        thread_id: str,
        ns: str = "",
        *,
        before: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[CheckpointTuple]:
        return run_sync(self.alist(thread_id, ns, before=before, limit=limit))

    def put(self: Checkpointer, checkpoint: Checkpoint) -> None:
        run_sync(self.aput(checkpoint))

    def put_writes(
        self: Checkpointer,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[tuple[str, Any]],
    ) -> None:
        run_sync(self.aput_writes(thread_id, ns, checkpoint_id, task_id, writes))

    def delete_thread(self: Checkpointer, thread_id: str) -> None:
        run_sync(self.adelete_thread(thread_id))
