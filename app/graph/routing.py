"""From a node's return value to writes and routes, and from routes to the next step's tasks.

Routes are stored with the task's writes (the ROUTE channel): a node name, or
``{"node": name, "arg": value}`` for a ``Send``. Conditional edges are evaluated when the task
finishes, on the state at the start of the step plus the task's own writes (as LangGraph does),
so a resumed step never re-evaluates the routes of tasks that already finished.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from app.checkpoint.base import TaskSpec
from app.graph.channels import apply_writes
from app.graph.errors import InvalidUpdateError
from app.graph.ids import task_id
from app.graph.spec import BranchSpec, Callee, GraphSpec, NodeSpec
from app.graph.types import END, Command, Send

__all__ = [
    "Route",
    "call",
    "next_tasks",
    "node_routes",
    "retask",
    "split_return",
    "targets",
    "update_writes",
]

Route = str | dict[str, Any]


def call(callee: Callee, arg: Any, config: Any) -> Any:
    """Call a user function with its resolved convention (the result may be awaitable)."""
    mode = callee.config_mode
    if mode == 0:
        return callee.fn(arg)
    if mode == 1:
        return callee.fn(arg, config)
    return callee.fn(arg, config=config)


def update_writes(spec: GraphSpec, node: str, update: Any) -> list[tuple[str, Any]]:
    """Return the writes of one update (a dict, None, a schema instance or (key, value) pairs).

    Raises:
        InvalidUpdateError: not a dict-like update, or a key the state does not have.
    """
    if update is None:
        return []
    if isinstance(update, list | tuple) and all(
        isinstance(w, tuple) and len(w) == 2 for w in update
    ):
        writes = list(update)
    else:
        as_dict = spec.state.as_update(update, f"update from '{node}'")
        writes = list(as_dict.items()) if as_dict else []
    channels = spec.channels
    for key, _ in writes:
        if key not in channels:
            raise InvalidUpdateError(
                f"'{node}' wrote unknown state key '{key}'; the state has {sorted(channels)}"
            )
    return writes


def _target(spec: GraphSpec, source: str, item: Any, out: list[Route]) -> None:
    if isinstance(item, Send):
        if item.node not in spec.nodes:
            raise InvalidUpdateError(f"'{source}' sent to unknown node '{item.node}'")
        out.append({"node": item.node, "arg": item.arg})
    elif isinstance(item, str):
        if item == END:
            return
        if item not in spec.nodes:
            raise InvalidUpdateError(f"'{source}' routed to unknown node '{item}'")
        out.append(item)
    elif isinstance(item, Sequence):
        for sub in item:
            _target(spec, source, sub, out)
    elif item is not None:
        raise InvalidUpdateError(f"'{source}' routed to {item!r}; expected a node name or Send")


def targets(spec: GraphSpec, source: str, goto: Any) -> list[Route]:
    """Return the routes of a ``goto`` (a node name, Send, or a sequence of them).

    Raises:
        InvalidUpdateError: a target is not a node of the graph.
    """
    out: list[Route] = []
    _target(spec, source, goto, out)
    return out


def retask(
    tasks: Sequence[TaskSpec], checkpoint_id: str, ns: str, step: int
) -> tuple[TaskSpec, ...]:
    """Return ``tasks`` with the ids they get under another checkpoint (fork, update)."""
    out: list[TaskSpec] = []
    pushed = 0
    for t in tasks:
        if t.path[0] == "pull":
            out.append(TaskSpec(task_id(checkpoint_id, ns, step, t.name, "pull"), t.name, t.path))
        else:
            tid = task_id(checkpoint_id, ns, step, t.name, f"push:{pushed}")
            out.append(TaskSpec(tid, t.name, ("push", pushed), t.arg))
            pushed += 1
    return tuple(out)


async def _branch(
    spec: GraphSpec, source: str, branch: BranchSpec, state: Any, config: Any, out: list[Route]
) -> None:
    result = call(branch.path, state, config)
    if branch.path.is_async or inspect.isawaitable(result):
        result = await result
    items = result if isinstance(result, list | tuple) else [result]
    mapping = branch.path_map
    for item in items:
        if mapping is not None and not isinstance(item, Send):
            try:
                item = mapping[item]
            except (KeyError, TypeError):
                raise InvalidUpdateError(
                    f"Conditional edge from '{source}' returned {item!r}, which is not in its "
                    f"path_map {list(mapping)}"
                ) from None
        _target(spec, source, item, out)


async def node_routes(
    spec: GraphSpec,
    node: NodeSpec,
    writes: list[tuple[str, Any]],
    goto: Any,
    values: Mapping[str, Any],
    config: Any,
) -> list[Route]:
    """Return where ``node`` goes next: ``Command.goto``, static edges, then conditional edges.

    Args:
        spec: the graph.
        node: the node that finished (or START).
        writes: the node's own writes; conditional edges see ``values`` plus these.
        goto: ``Command.goto`` of its return value.
        values: the state at the start of the step.
        config: the run's config, for path functions that take it.

    Raises:
        InvalidUpdateError: a route names an unknown node or is not in the path_map.
    """
    routes: list[Route] = []
    if goto:
        _target(spec, node.name, goto, routes)
    routes.extend(node.edges)
    if node.branches:
        fresh = apply_writes(spec.channels, values, writes) if writes else values
        state = spec.state.to_input(fresh)
        for branch in node.branches:
            await _branch(spec, node.name, branch, state, config, routes)
    return routes


def split_return(ret: Any) -> tuple[Any, Any]:
    """Return ``(update, goto)`` of a node's return value."""
    if isinstance(ret, Command):
        return ret.update, ret.goto
    return ret, ()


def next_tasks(
    spec: GraphSpec,
    finished: Sequence[tuple[str, Sequence[Route]]],
    barriers: Mapping[str, Sequence[str]],
    checkpoint_id: str,
    ns: str,
    step: int,
) -> tuple[tuple[TaskSpec, ...], dict[str, list[str]]]:
    """Return the tasks a new checkpoint schedules, and the updated join barriers.

    Pull tasks (one per triggered node) come first in node-declaration order, then push tasks
    (Sends) in the order they were sent. ``finished`` lists ``(node name, routes)`` in task
    order; the name also counts as an arrival at the joins the node belongs to.
    """
    pull: set[str] = set()
    push: list[dict[str, Any]] = []
    new_barriers: dict[str, list[str]] | None = None
    nodes = spec.nodes
    for name, routes in finished:
        for route in routes:
            if type(route) is str:
                pull.add(route)
            else:
                push.append(route)  # type: ignore[arg-type]
        node = nodes.get(name)
        if node is not None and node.joins:
            if new_barriers is None:
                new_barriers = {k: list(v) for k, v in barriers.items()}
            for key in node.joins:
                seen = new_barriers.setdefault(key, [])
                if name not in seen:
                    seen.append(name)
                join = spec.joins[key]
                if join.sources.issubset(seen):
                    pull.add(join.target)
                    del new_barriers[key]
    tasks: list[TaskSpec] = []
    if pull:
        order = sorted(pull, key=lambda n: nodes[n].index) if len(pull) > 1 else list(pull)
        tasks.extend(
            TaskSpec(task_id(checkpoint_id, ns, step, n, "pull"), n, ("pull", n)) for n in order
        )
    for i, send in enumerate(push):
        n = send["node"]
        tasks.append(
            TaskSpec(task_id(checkpoint_id, ns, step, n, f"push:{i}"), n, ("push", i), send["arg"])
        )
    out = new_barriers if new_barriers is not None else dict(barriers)
    return tuple(tasks), {k: list(v) for k, v in out.items() if v}
