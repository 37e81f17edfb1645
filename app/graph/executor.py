"""Running one task: call the node in its run context and classify what happened.

A task ends *done* (its writes and routes), *paused* (``interrupt()`` or a paused subgraph),
*failed* (any other exception, kept as data until the step ends) or with a *parent command*
(``Command(graph=Command.PARENT)`` from a subgraph node). The runner saves the outcome's
``saved`` writes the moment the task ends.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, replace
from typing import Any

from app.checkpoint.base import ERROR, INTERRUPT, ROUTE, InterruptRecord, TaskSpec
from app.graph.errors import GraphInterrupt, InvalidUpdateError, ParentCommand
from app.graph.interrupt import RunScope, TaskScope, _current_task
from app.graph.routing import Route, call, node_routes, update_writes
from app.graph.spec import GraphSpec
from app.graph.types import Command, Interrupt

__all__ = ["DONE", "FAILED", "PARENT", "PAUSED", "Outcome", "run_task"]

DONE, PAUSED, FAILED, PARENT = 0, 1, 2, 3


@dataclass(slots=True)
class Outcome:
    """How one task ended.

    Attributes:
        status: DONE, PAUSED, FAILED or PARENT.
        writes: its state writes (DONE).
        routes: where it goes next (DONE).
        interrupts: its pending questions (PAUSED).
        pending: the stored form of ``interrupts`` (with node and namespace).
        saved: what to save as the task's pending writes.
        error: the node's exception (FAILED).
        command: the Command for the parent graph (PARENT).
    """

    task: TaskSpec
    status: int
    writes: list[tuple[str, Any]]
    routes: list[Route]
    interrupts: tuple[Interrupt, ...] = ()
    pending: tuple[InterruptRecord, ...] = ()
    saved: list[tuple[str, Any]] | None = None
    error: BaseException | None = None
    command: Command[Any] | None = None


def _records_of(gi: GraphInterrupt, name: str, ns: str) -> tuple[InterruptRecord, ...]:
    if gi.records:
        return gi.records
    # A GraphInterrupt raised by user code rather than interrupt(): store what it carries.
    return tuple(
        InterruptRecord(
            id=i.id,
            value=i.value,
            node=name,
            ns=ns,
            schema=i.schema,
            timeout=i.timeout,
            has_default=i.has_default,
            default=i.default if i.has_default else None,
        )
        for i in gi.interrupts
    )


async def _call_node(
    spec: GraphSpec, task: TaskSpec, values: dict[str, Any], config: Any, inline: bool
) -> Any:
    node = spec.nodes[task.name]
    push = task.path[0] == "push"
    if node.subgraph is not None:  # a subgraph takes the state as a dict, whatever the schema
        out = await node.subgraph.nested_run(task.arg if push else dict(values))
        return {k: v for k, v in out.items() if k in spec.channels}
    arg = task.arg if push else spec.state.to_input(values)
    callee = node.callee
    assert callee is not None
    if callee.is_async:
        return await call(callee, arg, config)
    if inline:  # a lone sync task runs on the loop thread: no thread hop
        ret = call(callee, arg, config)
    else:  # several sync tasks run in threads, each with a copy of this context
        ret = await asyncio.to_thread(call, callee, arg, config)
    return await ret if inspect.isawaitable(ret) else ret


async def run_task(
    spec: GraphSpec,
    run: RunScope,
    task: TaskSpec,
    ns: str,
    answers: list[Any],
    values: dict[str, Any],
    *,
    inline: bool,
    nested: bool,
) -> Outcome:
    """Run one task of a step on ``values`` (the state at the start of the step).

    Args:
        spec: the graph.
        run: the run's scope (saver, thread, config).
        task: the task to run.
        ns: the task's namespace (``node:task_id`` below the graph's own).
        answers: the answers it already has, in ``interrupt()`` call order.
        values: the state at the start of the step.
        inline: it is the step's only task (a sync node runs on the loop thread).
        nested: the graph runs as a subgraph (``Command.PARENT`` is allowed).
    """
    scope = TaskScope(run, task.name, task.id, ns, answers)
    token = _current_task.set(scope)
    try:
        try:
            ret = await _call_node(spec, task, values, run.config, inline)
        except ParentCommand as pc:
            ret = replace(pc.command, graph=None)  # a subgraph routed in this graph
        if isinstance(ret, Command):
            if ret.graph is not None:
                if ret.graph != Command.PARENT or not nested:
                    raise InvalidUpdateError(
                        f"Node '{task.name}' returned Command(graph={ret.graph!r}) but its "
                        "graph has no such parent"
                    )
                return Outcome(task, PARENT, [], [], command=ret)
            update, goto = ret.update, ret.goto
        else:
            update, goto = ret, ()
        writes = update_writes(spec, task.name, update)
        node = spec.nodes[task.name]
        routes = await node_routes(spec, node, writes, goto, values, run.config)
        return Outcome(task, DONE, writes, routes, saved=[*writes, (ROUTE, routes)])
    except GraphInterrupt as gi:
        pending = _records_of(gi, task.name, ns)
        # Own interrupt() calls (answered ones included), then what a subgraph propagated.
        records = [*scope.records, *(r for r in pending if r["ns"] != ns or not gi.records)]
        return Outcome(task, PAUSED, [], [], gi.interrupts, pending, saved=[(INTERRUPT, records)])
    except Exception as exc:
        error = {"type": type(exc).__name__, "message": str(exc)}
        return Outcome(task, FAILED, [], [], saved=[(ERROR, error)], error=exc)
    finally:
        _current_task.reset(token)
