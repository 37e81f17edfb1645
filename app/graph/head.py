"""Reading a stored checkpoint with its pending writes: which tasks finished, paused or failed.

A task of the checkpoint's step has *finished* when it wrote ROUTE (its state writes are then
final and are reused on resume). Otherwise it must (re-)run. Its pending interrupts are its own
``interrupt()`` records beyond the answers it has (RESUME), plus the records propagated from a
subgraph (their namespace is deeper than the task's own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.checkpoint.base import (
    ERROR,
    INTERRUPT,
    NULL_TASK_ID,
    RESUME,
    ROUTE,
    CheckpointTuple,
    InterruptRecord,
    TaskSpec,
)
from app.graph.channels import Channel, apply_writes
from app.graph.errors import InvalidUpdateError

__all__ = ["SPECIAL", "HeadView", "TaskView", "apply_lenient", "task_ns"]

SPECIAL = frozenset({ROUTE, INTERRUPT, RESUME, ERROR})


def task_ns(graph_ns: str, name: str, tid: str) -> str:
    """Return a task's namespace: ``name:id``, below the graph's own namespace."""
    return f"{name}:{tid}" if not graph_ns else f"{graph_ns}|{name}:{tid}"


@dataclass(slots=True)
class TaskView:
    """One task of a checkpoint's step and what it wrote so far."""

    spec: TaskSpec
    ns: str
    writes: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """It completed; its writes are final."""
        return ROUTE in self.writes

    @property
    def state_writes(self) -> list[tuple[str, Any]]:
        """Its writes to state keys, in the order they were made."""
        return [(k, v) for k, v in self.writes.items() if k not in SPECIAL]

    @property
    def answers(self) -> list[Any]:
        """The answers it received, in ``interrupt()`` call order."""
        return list(self.writes.get(RESUME) or ())

    @property
    def records(self) -> list[InterruptRecord]:
        """Every question it raised (its own, answered ones included, and its subgraph's)."""
        return list(self.writes.get(INTERRUPT) or ())

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"type", "message"}`` when its last run failed (and it has not finished since)."""
        return None if self.finished else self.writes.get(ERROR)

    def pending(self) -> list[InterruptRecord]:
        """The questions still waiting for an answer, in call order."""
        if self.finished:
            return []
        records = self.writes.get(INTERRUPT)
        if not records:
            return []
        own = [r for r in records if r["ns"] == self.ns]
        nested = [r for r in records if r["ns"] != self.ns]
        return own[len(self.writes.get(RESUME) or ()) :] + nested


@dataclass(slots=True)
class HeadView:
    """A checkpoint tuple, grouped by task."""

    ct: CheckpointTuple
    tasks: list[TaskView]
    null: dict[str, Any]

    @classmethod
    def of(cls, ct: CheckpointTuple) -> HeadView:
        """Group ``ct``'s writes by task (writes of tasks not in the step are ignored)."""
        cp = ct.checkpoint
        views = {t.id: TaskView(t, task_ns(cp.ns, t.name, t.id)) for t in cp.tasks}
        null: dict[str, Any] = {}
        for w in ct.writes:
            if w.task_id == NULL_TASK_ID:
                null[w.channel] = w.value
            else:
                view = views.get(w.task_id)
                if view is not None:
                    view.writes[w.channel] = w.value
        return cls(ct, list(views.values()), null)

    @property
    def null_writes(self) -> list[tuple[str, Any]]:
        """State writes from ``Command(update=...)`` input, applied before the tasks' writes."""
        return [(k, v) for k, v in self.null.items() if k not in SPECIAL]

    @property
    def null_routes(self) -> list[Any]:
        """Routes from ``Command(goto=...)`` input."""
        return list(self.null.get(ROUTE) or ())

    def unfinished(self) -> list[TaskView]:
        """Tasks that still have to run, in task order."""
        return [t for t in self.tasks if not t.finished]

    def pending(self) -> list[tuple[TaskView, InterruptRecord]]:
        """Every pending question with its task, in task order."""
        return [(t, r) for t in self.tasks for r in t.pending()]

    def live_values(self, channels: Mapping[str, Channel]) -> dict[str, Any]:
        """The checkpoint's values with null writes, then the finished tasks' writes, applied.

        Conflicting writes (which fail the step when it completes) are shown last-wins.
        """
        values = self.step_values(channels)
        writes = [w for t in self.tasks if t.finished for w in t.state_writes]
        return apply_lenient(channels, values, writes)

    def step_values(self, channels: Mapping[str, Channel]) -> dict[str, Any]:
        """The state the step's tasks read: the checkpoint's values plus null writes."""
        values = self.ct.checkpoint.values
        null = self.null_writes
        return apply_lenient(channels, values, null) if null else dict(values)


def apply_lenient(
    channels: Mapping[str, Channel], values: Mapping[str, Any], writes: list[tuple[str, Any]]
) -> dict[str, Any]:
    """Apply writes for display: conflicting writes to a plain key are shown last-wins."""
    if not writes:
        return dict(values)
    try:
        return apply_writes(channels, values, writes)
    except InvalidUpdateError:
        merged = dict(values)
        merged.update(writes)
        return merged
