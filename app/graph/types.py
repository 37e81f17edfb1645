"""Public value types of the engine: what nodes return and what calls give back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, NamedTuple, TypeVar

__all__ = [
    "END",
    "MISSING",
    "START",
    "Command",
    "Interrupt",
    "RunResult",
    "RunStatus",
    "Send",
    "StateSnapshot",
    "StateTask",
]

#: The virtual node every run starts from.
START = "__start__"
#: The virtual node that ends a run.
END = "__end__"


class _Missing:
    """Sentinel type for "no value given" (``None`` is a valid default)."""

    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


#: Marks an omitted optional argument (for example ``interrupt(default=...)``).
MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True, repr=False)
class Interrupt:
    """A pending question raised by ``interrupt()``.

    Attributes:
        value: the question, as passed to ``interrupt()``.
        id: 32 lowercase hex characters; stable for the same pending question, distinct for
            every ``interrupt()`` call (per call index, task and thread).
        schema: JSON Schema the answer must satisfy, or None.
        timeout: seconds after which the service answers with ``default``, or None.
        default: the answer used on timeout; ``MISSING`` when none was given.
    """

    value: Any
    id: str
    schema: dict[str, Any] | None = None
    timeout: float | None = None
    default: Any = MISSING

    def __repr__(self) -> str:
        parts = [f"value={self.value!r}", f"id={self.id!r}"]
        if self.schema is not None:
            parts.append(f"schema={self.schema!r}")
        if self.timeout is not None:
            parts.append(f"timeout={self.timeout!r}")
        if self.default is not MISSING:
            parts.append(f"default={self.default!r}")
        return f"Interrupt({', '.join(parts)})"

    @property
    def has_default(self) -> bool:
        """Whether a default answer was given (``None`` counts as one)."""
        return self.default is not MISSING


class Send:
    """Start a task of ``node`` with ``arg`` as its input (fan-out); return it from a path.

    Args:
        node: the target node's name.
        arg: what the node receives instead of the state.
    """

    __slots__ = ("arg", "node")

    def __init__(self, node: str, arg: Any) -> None:
        self.node = node
        self.arg = arg

    def __repr__(self) -> str:
        return f"Send(node={self.node!r}, arg={self.arg!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Send) and (self.node, self.arg) == (other.node, other.arg)

    def __hash__(self) -> int:
        return hash(self.node)


N = TypeVar("N")


@dataclass(frozen=True, slots=True, repr=False)
class Command(Generic[N]):
    """Resume, update or route: as input to a call, or as a node's return value.

    Attributes:
        graph: None for the current graph, ``Command.PARENT`` to route in the parent graph
            (from a subgraph node).
        update: a partial state update (dict), applied through the reducers.
        resume: the answer to the one pending interrupt, or a map ``{interrupt_id: answer}``.
        goto: a node name, a ``Send``, or a sequence of them: where to go next.
    """

    graph: str | None = None
    update: Any = None
    resume: Any = None
    goto: str | Send | Sequence[str | Send] = ()

    PARENT: ClassVar[str] = "__parent__"

    def __repr__(self) -> str:
        parts = [
            f"{name}={getattr(self, name)!r}"
            for name in ("graph", "update", "resume", "goto")
            if getattr(self, name) not in (None, ())
        ]
        return f"Command({', '.join(parts)})"


class StateTask(NamedTuple):
    """One task of a checkpoint's step, as shown by ``get_state``.

    ``error`` is the repr of the exception when the task failed; ``result`` is the task's update
    when it finished; ``state`` is the subgraph's config (or snapshot) for a subgraph task.
    """

    id: str
    name: str
    path: tuple[str | int, ...]
    error: str | None = None
    interrupts: tuple[Interrupt, ...] = ()
    state: Any = None
    result: Any = None


class StateSnapshot(NamedTuple):
    """A thread's state at one checkpoint."""

    values: dict[str, Any]
    next: tuple[str, ...]
    config: dict[str, Any]
    metadata: dict[str, Any] | None
    created_at: str | None
    parent_config: dict[str, Any] | None
    tasks: tuple[StateTask, ...]
    interrupts: tuple[Interrupt, ...]


RunStatus = Literal["completed", "interrupted", "paused"]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended, for callers that drive threads (the worker).

    Attributes:
        status: "completed" (nothing left to run), "interrupted" (dynamic interrupts
            pending) or "paused" (a static breakpoint; continue with ``None``).
        values: the state values (output keys).
        interrupts: the pending interrupts, in task order.
        next: names of the tasks still to run.
        checkpoint_id: the thread's head checkpoint, None without a checkpointer.
    """

    status: RunStatus
    values: dict[str, Any]
    interrupts: tuple[Interrupt, ...] = ()
    next: tuple[str, ...] = ()
    checkpoint_id: str | None = None
