"""``update_state``: write values as if a node had returned them, as a new "update" checkpoint.

The update starts from the checkpoint's saved values (pending writes of an interrupted step are
dropped, as in LangGraph), runs ``as_node``'s edges on the result, and keeps the other tasks the
checkpoint had scheduled. ``as_node=END`` instead applies what the step's finished tasks wrote
and cancels the open tasks (and their questions).
"""

from __future__ import annotations

from typing import Any

from app.checkpoint.base import Checkpoint, CheckpointTuple
from app.graph.channels import apply_writes
from app.graph.errors import InvalidUpdateError
from app.graph.head import HeadView
from app.graph.ids import checkpoint_id
from app.graph.routing import Route, next_tasks, node_routes, update_writes
from app.graph.spec import GraphSpec
from app.graph.types import END, START

__all__ = ["build_update", "infer_as_node"]


def infer_as_node(spec: GraphSpec, ct: CheckpointTuple | None) -> str:
    """Pick the node an update counts as when ``as_node`` is not given.

    Raises:
        InvalidUpdateError: the last step ran several nodes ("Ambiguous update").
    """
    if len(spec.nodes) == 1:
        return next(iter(spec.nodes))
    if ct is None:
        return START
    writers = list(dict.fromkeys(ct.checkpoint.extra.get("writers") or ()))
    if len(writers) > 1:
        raise InvalidUpdateError("Ambiguous update, specify as_node")
    return writers[0] if writers else START


async def build_update(
    spec: GraphSpec,
    ct: CheckpointTuple | None,
    thread_id: str,
    ns: str,
    values: Any,
    as_node: str,
    config: Any,
    created_at: str,
) -> Checkpoint:
    """Return the "update" checkpoint (not saved).

    Raises:
        InvalidUpdateError: unknown ``as_node``, or values the state cannot take.
    """
    if as_node not in spec.nodes and as_node not in (START, END):
        raise InvalidUpdateError(f"update_state: unknown node '{as_node}' (as_node)")
    prev = ct.checkpoint if ct is not None else None
    head = HeadView.of(ct) if ct is not None else None
    barriers = prev.extra.get("barriers", {}) if prev is not None else {}
    writes = update_writes(spec, as_node, values)
    finished: list[tuple[str, list[Route]]] = []
    if as_node == END:
        base = head.live_values(spec.channels) if head is not None else spec.initial_values()
        if head is not None:
            finished.append(("", head.null_routes))
            finished.extend(
                (t.spec.name, list(t.writes["__route__"])) for t in head.tasks if t.finished
            )
        new_values = apply_writes(spec.channels, base, writes) if writes else base
    else:
        base = dict(prev.values) if prev is not None else spec.initial_values()
        new_values = apply_writes(spec.channels, base, writes) if writes else base
        node = spec.start if as_node == START else spec.nodes[as_node]
        kept: list[Route] = [
            t.name if t.path[0] == "pull" else {"node": t.name, "arg": t.arg}
            for t in (prev.tasks if prev is not None else ())
            if t.name != as_node
        ]
        finished.append(("", kept))
        finished.append((as_node, await node_routes(spec, node, writes, (), base, config)))
    step = prev.step + 1 if prev is not None else -1
    cid = checkpoint_id(after=prev.id if prev is not None else None)
    tasks, barriers = next_tasks(spec, finished, barriers, cid, ns, step)
    extra: dict[str, Any] = {"writers": [as_node]}
    if barriers:
        extra["barriers"] = barriers
    return Checkpoint(
        thread_id,
        ns,
        cid,
        prev.id if prev is not None else None,
        step,
        "update",
        new_values,
        tasks,
        extra,
        {"source": "update", "step": step, "parents": {}},
        created_at,
    )
