"""The engine's error tree.

    GraphError
     ├── InvalidGraphError          (also ValueError)   compile-time validation
     ├── InvalidUpdateError         (also ValueError)   a bad write, input or update
     ├── GraphRecursionError        (also RecursionError) too many supersteps
     ├── InvalidResumeError         (also ValueError)   a resume that cannot be applied
     ├── CheckpointerRequiredError  (also RuntimeError) persistence needed but not configured
     ├── InvalidConfigError         (also ValueError)   thread_id / checkpoint_id problems
     ├── NotInGraphError            (also RuntimeError) interrupt() outside a node
     └── EmptyInputError            (also ValueError)   reserved; D1 makes None a valid start
    GraphInterrupt (BaseException)  a node paused; not an error (D5)

Every error is raised before anything is written to the checkpointer, unless its docstring says
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from app.checkpoint.base import InterruptRecord
    from app.graph.types import Command, Interrupt

__all__ = [
    "CheckpointerRequiredError",
    "EmptyInputError",
    "GraphError",
    "GraphInterrupt",
    "GraphRecursionError",
    "InvalidConfigError",
    "InvalidGraphError",
    "InvalidResumeError",
    "InvalidUpdateError",
    "NotInGraphError",
    "ParentCommand",
    "RecursionLimitError",
    "ResumeReason",
]

ResumeReason = Literal[
    "ambiguous", "empty_map", "not_pending", "empty_command", "invalid_answer", "nothing_pending"
]


class GraphError(Exception):
    """The graph engine failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or "").strip())


class InvalidGraphError(GraphError, ValueError):
    """The graph definition is invalid."""


class InvalidUpdateError(GraphError, ValueError):
    """A node, input or update_state wrote something the state cannot take."""


class GraphRecursionError(GraphError, RecursionError):
    """The recursion limit was reached without hitting a stop condition."""


RecursionLimitError = GraphRecursionError


class NotInGraphError(GraphError, RuntimeError):
    """Called outside a running graph (``interrupt()`` needs the node it pauses)."""


class EmptyInputError(GraphError, ValueError):
    """Received empty input."""


class InvalidConfigError(GraphError, ValueError):
    """The config does not select a usable thread or checkpoint."""


class CheckpointerRequiredError(GraphError, RuntimeError):
    """This needs a checkpointer: pass `checkpointer=` to `compile()` (for example InMemorySaver())."""


class InvalidResumeError(GraphError, ValueError):
    """The resume cannot be applied; nothing was written.

    Attributes:
        reason: why ("ambiguous", "empty_map", "not_pending", "empty_command",
            "invalid_answer" or "nothing_pending").
        interrupt_ids: the ids the caller named that caused the error.
        pending_ids: the ids of the interrupts pending on the thread, in task order.
        errors: for "invalid_answer", one dict per validation error
            (``interrupt_id``, ``loc``, ``msg``, ``type``).
    """

    def __init__(
        self,
        reason: ResumeReason,
        message: str,
        *,
        interrupt_ids: Sequence[str] = (),
        pending_ids: Sequence[str] = (),
        errors: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.reason: ResumeReason = reason
        self.interrupt_ids: tuple[str, ...] = tuple(interrupt_ids)
        self.pending_ids: tuple[str, ...] = tuple(pending_ids)
        self.errors: list[dict[str, Any]] = list(errors)


class GraphInterrupt(BaseException):
    """A node paused on ``interrupt()``; the run stops and waits for an answer.

    Derives from BaseException (D5) so ``except Exception`` in a node cannot swallow the pause.

    Attributes:
        interrupts: the pending questions, in task order.
    """

    def __init__(
        self,
        interrupts: Sequence[Interrupt] = (),
        records: Sequence[InterruptRecord] = (),
    ) -> None:
        super().__init__(tuple(interrupts))
        self.interrupts: tuple[Interrupt, ...] = tuple(interrupts)
        # The stored form of the same questions (with node and namespace), for parent graphs.
        self.records: tuple[InterruptRecord, ...] = tuple(records)


class ParentCommand(BaseException):
    """Internal: a subgraph node returned ``Command(graph=Command.PARENT)``; unwinds to the parent."""

    def __init__(self, command: Command[Any]) -> None:
        super().__init__(command)
        self.command = command
