"""`StateSnapshot` views of a stored checkpoint. Pure: builds values from what was loaded.

*Live view* (``get_state`` without ``checkpoint_id``): values include null writes and the writes
of tasks that finished; ``next`` lists the tasks still to run; ``interrupts`` only the questions
still waiting. *Record view* (an explicit ``checkpoint_id``, and history): values as at the
start of the step, every task in ``next``, and each task's latest question, answered or not.
"""

from __future__ import annotations

from typing import Any

from app.checkpoint.base import Checkpoint, CheckpointTuple, InterruptRecord
from app.graph.head import HeadView, TaskView
from app.graph.interrupt import record_to_interrupt
from app.graph.spec import GraphSpec
from app.graph.types import Interrupt, StateSnapshot, StateTask

__all__ = ["checkpoint_config", "empty_snapshot", "snapshot"]


def checkpoint_config(thread_id: str, ns: str, checkpoint_id: str) -> dict[str, Any]:
    """The config that selects one checkpoint."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def empty_snapshot(thread_id: str, ns: str) -> StateSnapshot:
    """The snapshot of a thread that has no checkpoint."""
    return StateSnapshot(
        {},
        (),
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}},
        None,
        None,
        None,
        (),
        (),
    )


def _latest(view: TaskView) -> list[InterruptRecord]:
    own = [r for r in view.records if r["ns"] == view.ns]
    nested = [r for r in view.records if r["ns"] != view.ns]
    return own[-1:] + nested


def _error(view: TaskView) -> str | None:
    err = view.error
    if not err:
        return None
    return f"{err.get('type', 'Exception')}({err.get('message', '')!r})"


def snapshot(
    spec: GraphSpec,
    ct: CheckpointTuple,
    *,
    live: bool,
    subgraph_states: dict[str, Any] | None = None,
) -> StateSnapshot:
    """Build the live or record view of ``ct``.

    Args:
        spec: the graph whose checkpoint it is.
        ct: the checkpoint with its writes.
        live: the live view (else the record view).
        subgraph_states: per task id, what to show as ``StateTask.state`` (a nested snapshot).
    """
    cp: Checkpoint = ct.checkpoint
    head = HeadView.of(ct)
    values = head.live_values(spec.channels) if live else dict(cp.values)
    tasks: list[StateTask] = []
    shown: list[Interrupt] = []
    for view in head.tasks:
        records = view.pending() if live else _latest(view)
        interrupts = tuple(record_to_interrupt(r) for r in records)
        shown.extend(interrupts)
        node = spec.nodes.get(view.spec.name)
        state: Any = None
        if node is not None and node.subgraph is not None:
            state = (subgraph_states or {}).get(view.spec.id) or {
                "configurable": {"thread_id": cp.thread_id, "checkpoint_ns": view.ns}
            }
        tasks.append(
            StateTask(
                view.spec.id,
                view.spec.name,
                view.spec.path,
                _error(view),
                interrupts,
                state,
                dict(view.state_writes) if view.finished else None,
            )
        )
    next_ = tuple(t.spec.name for t in head.tasks if not (live and t.finished))
    return StateSnapshot(
        values,
        next_,
        checkpoint_config(cp.thread_id, cp.ns, cp.id),
        dict(cp.metadata),
        cp.created_at or None,
        checkpoint_config(cp.thread_id, cp.ns, cp.parent_id) if cp.parent_id else None,
        tuple(tasks),
        tuple(shown),
    )
