"""The superstep loop. Every checkpointer call goes through `store.RunStore`.

One run: load the thread's head, decide what the input means (`resume.plan_run`), store any
answers, then repeat: run the step's open tasks (concurrently), save each task's outcome as
pending writes the moment it finishes, and when every task has finished fold their writes in
task order into the next checkpoint. A paused or failed task ends the run with the head left
at the step's checkpoint, so a later call re-runs exactly the tasks that did not finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.checkpoint.base import (
    NULL_TASK_ID,
    ROUTE,
    Checkpoint,
    CheckpointTuple,
    InterruptRecord,
    TaskSpec,
)
from app.graph.bridge import sync_caller
from app.graph.channels import apply_writes
from app.graph.errors import (
    GraphInterrupt,
    GraphRecursionError,
    InvalidConfigError,
    ParentCommand,
)
from app.graph.executor import DONE, FAILED, PARENT, PAUSED, Outcome, run_task
from app.graph.head import HeadView, TaskView, apply_lenient, task_ns
from app.graph.ids import checkpoint_id
from app.graph.interrupt import RunScope, open_scope
from app.graph.resume import Plan, plan_run
from app.graph.routing import Route, next_tasks, node_routes, retask
from app.graph.store import RunStore
from app.graph.stream import StreamSink
from app.graph.types import START, Interrupt, RunStatus

if TYPE_CHECKING:
    from app.graph.compiled import CompiledStateGraph

__all__ = ["RunEnd", "execute", "now_iso"]

_INTERRUPT_KEY = "__interrupt__"


@dataclass(slots=True)
class RunEnd:
    """How a run ended (the engine-internal form of `RunResult`)."""

    status: RunStatus
    values: dict[str, Any]
    interrupts: tuple[Interrupt, ...] = ()
    records: tuple[InterruptRecord, ...] = ()
    next: tuple[str, ...] = ()
    checkpoint_id: str | None = None
    nested: bool = False

    def raise_if_nested_pause(self) -> None:
        """A subgraph that did not complete pauses its parent task (GraphInterrupt)."""
        if self.nested and self.status != "completed":
            raise GraphInterrupt(self.interrupts, self.records)


def now_iso() -> str:
    """The current UTC time, ISO-8601 with microseconds (a checkpoint's created_at)."""
    return datetime.now(UTC).isoformat()


async def execute(
    graph: CompiledStateGraph,
    value: Any,
    config: dict[str, Any] | None,
    *,
    interrupt_before: Sequence[str] | None = None,
    interrupt_after: Sequence[str] | None = None,
    durability: str | None = None,
    sink: StreamSink | None = None,
    subgraph: bool = False,
) -> RunEnd:
    """Run ``graph`` on one thread until it completes, pauses or fails.

    ``subgraph=True``: run as the graph of a subgraph node, in the current task's context.

    Raises:
        The node's own exception when a node fails (after its error was saved), and the
        errors of `resume.plan_run` (before anything was saved).
    """
    scope, at, nested = open_scope(graph.checkpointer, config, durability, sink, subgraph=subgraph)
    run = _Run(graph, scope, nested, interrupt_before, interrupt_after)
    try:
        return await run.start(value, at)
    finally:
        if run.store is not None:
            await run.store.flush()


class _Run:
    def __init__(
        self,
        graph: CompiledStateGraph,
        scope: RunScope,
        nested: bool,
        before: Sequence[str] | None,
        after: Sequence[str] | None,
    ) -> None:
        self.spec = graph.spec
        self.scope = scope
        self.thread = scope.thread_id or ""
        self.store = (
            RunStore(scope.saver, self.thread, scope.ns, scope.durability)
            if scope.saver is not None
            else None
        )
        self.nested = nested
        self.before = frozenset(graph.interrupt_before if before is None else before)
        self.after = frozenset(graph.interrupt_after if after is None else after)
        self.steps = 0

    async def _save_cp(self, cp: Checkpoint) -> None:
        self.scope.checkpoint_id = cp.id
        if self.store is not None:
            await self.store.save_checkpoint(cp)

    async def _save_writes(self, cp_id: str, task: str, writes: list[tuple[str, Any]]) -> None:
        if self.store is not None:
            await self.store.save_writes(cp_id, task, writes)

    # ----------------------------------------------------------------- start

    async def start(self, value: Any, at: str | None) -> RunEnd:
        spec = self.spec
        store = self.store
        ct = await store.load(self.scope.ns, at) if store is not None else None
        if at is not None and ct is None:
            raise InvalidConfigError(f"Unknown checkpoint_id {at!r} for this thread")
        fork = False
        if at is not None and ct is not None and store is not None:
            latest = await store.load(self.scope.ns)
            fork = latest is not None and latest.checkpoint.id != ct.checkpoint.id
            if fork:  # time travel: the past step runs afresh, its old writes are not reused
                ct = CheckpointTuple(ct.checkpoint)
        head = HeadView.of(ct) if ct is not None else None
        if self.nested and head is not None:
            value = None  # a subgraph with a checkpoint continues from it; its input is ignored
        elif self.nested and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in spec.input_keys}
        plan = plan_run(spec, head, value, has_saver=store is not None)
        if plan.kind == "new":
            return await self._new(plan, head)
        assert head is not None
        cp = head.ct.checkpoint
        if plan.kind == "noop":
            return self._end("completed", cp, cp.values)
        if fork:
            head = await self._fork(cp)
        await self._prepare(head, plan)
        self.scope.checkpoint_id = head.ct.checkpoint.id
        self._emit("values", lambda: self._output(head.live_values(spec.channels)))
        return await self._loop(head.ct.checkpoint, head)

    async def _fork(self, cp: Checkpoint) -> HeadView:
        cid = checkpoint_id(after=cp.id)
        extra = {k: v for k, v in cp.extra.items() if k != "breakpoint"}
        tasks = retask(cp.tasks, cid, cp.ns, cp.step)
        fork = self._checkpoint(cp, cid, cp.step, "fork", dict(cp.values), tasks, extra)
        await self._save_cp(fork)
        return HeadView.of(CheckpointTuple(fork))

    async def _prepare(self, head: HeadView, plan: Plan) -> None:
        """Store answers and null writes (every check has passed, see `plan_run`)."""
        if plan.answers and self.store is not None:
            await self.store.deliver(head, plan.answers)
        if plan.writes or plan.routes:
            null = dict(head.null)
            for key, val in plan.writes:  # a second update folds into the first
                null[key] = self.spec.channels[key].reduce(null[key], [val]) if key in null else val
            if plan.routes:
                null[ROUTE] = list(null.get(ROUTE) or ()) + plan.routes
            head.null = null
            await self._save_writes(head.ct.checkpoint.id, NULL_TASK_ID, list(null.items()))

    async def _new(self, plan: Plan, head: HeadView | None) -> RunEnd:
        spec = self.spec
        prev = head.ct.checkpoint if head is not None else None
        values = spec.initial_values()
        if prev is not None:
            values.update(prev.values)
        if plan.writes:
            values = apply_writes(spec.channels, values, plan.writes)
        routes = list(plan.routes)
        if plan.from_start:
            config = self.scope.config
            routes.extend(await node_routes(spec, spec.start, [], (), values, config))
        step = prev.step + 1 if prev is not None else -1
        cid = checkpoint_id(after=prev.id if prev is not None else None)
        barriers = prev.extra.get("barriers", {}) if prev is not None else {}
        tasks, barriers = next_tasks(spec, [(START, routes)], barriers, cid, self.scope.ns, step)
        extra: dict[str, Any] = {"writers": [START]}
        if barriers:
            extra["barriers"] = barriers
        paused = self._hits(self.before, tasks)
        if paused:
            extra["breakpoint"] = "before"
        cp = self._checkpoint(prev, cid, step, "input", values, tasks, extra)
        self.steps = 1  # the input counts as a step, as in LangGraph
        await self._save_cp(cp)
        self._emit("values", lambda: self._output(values))
        if paused:
            return self._pause(cp)
        return await self._loop(cp, None)

    # ----------------------------------------------------------------- helpers

    def _checkpoint(
        self,
        prev: Checkpoint | None,
        cid: str,
        step: int,
        source: str,
        values: dict[str, Any],
        tasks: tuple[TaskSpec, ...],
        extra: dict[str, Any],
    ) -> Checkpoint:
        meta = {"source": source, "step": step, "parents": dict(self.scope.parents)}
        parent = prev.id if prev is not None else None
        return Checkpoint(
            self.thread, self.scope.ns, cid, parent, step, source, values, tasks, extra, meta,
            now_iso(),
        )  # fmt: skip

    def _hits(self, names: frozenset[str], tasks: Sequence[TaskSpec]) -> bool:
        if not names or not tasks:
            return False
        return "*" in names or any(t.name in names for t in tasks)

    def _emit(self, mode: str, payload: Any) -> None:
        sink = self.scope.sink
        if sink is not None and sink.wants(mode):
            sink.emit(self.scope.ns_path, mode, payload() if callable(payload) else payload)

    def _output(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: values[k] for k in self.spec.output_keys if k in values}

    def _end(
        self,
        status: RunStatus,
        cp: Checkpoint,
        values: Any,
        interrupts: tuple[Interrupt, ...] = (),
        records: tuple[InterruptRecord, ...] = (),
        next_: tuple[str, ...] = (),
    ) -> RunEnd:
        cid = cp.id if self.store is not None else None
        out = self._output(values)
        return RunEnd(status, out, interrupts, records, next_, cid, self.nested)

    def _pause(self, cp: Checkpoint) -> RunEnd:
        self._emit("updates", {_INTERRUPT_KEY: ()})
        return self._end("paused", cp, cp.values, next_=tuple(t.name for t in cp.tasks))

    # ----------------------------------------------------------------- the loop

    async def _loop(self, cp: Checkpoint, head: HeadView | None) -> RunEnd:
        channels = self.spec.channels
        limit = self.scope.recursion_limit
        values = head.step_values(channels) if head is not None else dict(cp.values)
        while cp.tasks:
            views = {t.spec.id: t for t in head.tasks} if head is not None else None
            todo = [t for t in cp.tasks if views is None or not views[t.id].finished]
            outcomes: dict[str, Outcome] = {}
            if todo:
                if self.steps >= limit:
                    raise GraphRecursionError(
                        f"Recursion limit of {limit} reached without hitting a stop condition. "
                        "You can increase the limit by setting the `recursion_limit` config key."
                    )
                self.steps += 1
                outcomes = await self._run_tasks(cp, todo, views, values)
                if any(o.status != DONE for o in outcomes.values()):
                    return self._stop(cp, views, todo, outcomes, values)
            cp, values = await self._finish_step(cp, head, views, outcomes, values)
            head = None
            if cp.extra.get("breakpoint"):
                return self._pause(cp)
        return self._end("completed", cp, values)

    async def _run_tasks(
        self,
        cp: Checkpoint,
        todo: list[TaskSpec],
        views: dict[str, TaskView] | None,
        values: dict[str, Any],
    ) -> dict[str, Outcome]:
        if len(todo) == 1:  # a lone sync node runs on the loop only under a sync caller
            lone = await self._task(cp, todo[0], views, values, sync_caller.get())
            return {todo[0].id: lone}
        done = await asyncio.gather(*(self._task(cp, t, views, values, False) for t in todo))
        return {o.task.id: o for o in done}

    async def _task(
        self,
        cp: Checkpoint,
        task: TaskSpec,
        views: dict[str, TaskView] | None,
        values: dict[str, Any],
        inline: bool,
    ) -> Outcome:
        view = views.get(task.id) if views is not None else None
        ns = task_ns(self.scope.ns, task.name, task.id)
        answers = view.answers if view is not None else []
        out = await run_task(
            self.spec, self.scope, task, ns, answers, values, inline=inline, nested=self.nested
        )
        if out.saved is not None:  # saved as soon as the task ends, not at the end of the step
            await self._save_writes(cp.id, task.id, out.saved)
        return out

    def _stop(
        self,
        cp: Checkpoint,
        views: dict[str, TaskView] | None,
        todo: list[TaskSpec],
        outcomes: dict[str, Outcome],
        values: dict[str, Any],
    ) -> RunEnd:
        """End the run on a step that cannot finish: raise a failure, or report the pause."""
        ordered = [outcomes[t.id] for t in todo]
        for o in ordered:
            if o.status == DONE:
                self._emit("updates", {o.task.name: dict(o.writes) or None})
            elif o.status == PAUSED:
                self._emit("updates", {_INTERRUPT_KEY: o.interrupts})
        for o in ordered:
            if o.status == FAILED and o.error is not None:
                raise o.error  # the first failure in task order, unchanged
        for o in ordered:
            if o.status == PARENT and o.command is not None:
                raise ParentCommand(o.command)
        writes: list[tuple[str, Any]] = []
        for t in cp.tasks:
            done = outcomes.get(t.id)
            if done is not None:
                writes.extend(done.writes)
            elif views is not None and views[t.id].finished:
                writes.extend(views[t.id].state_writes)
        live = apply_lenient(self.spec.channels, values, writes)
        paused = [o for o in ordered if o.status == PAUSED]
        if self.scope.sink is not None:
            out = self._output(live)
            for o in paused:
                self._emit("values", {**out, _INTERRUPT_KEY: o.interrupts})
        interrupts = tuple(i for o in paused for i in o.interrupts)
        records = tuple(r for o in paused for r in o.pending)
        next_ = tuple(o.task.name for o in paused)
        return self._end("interrupted", cp, live, interrupts, records, next_)

    async def _finish_step(
        self,
        cp: Checkpoint,
        head: HeadView | None,
        views: dict[str, TaskView] | None,
        outcomes: dict[str, Outcome],
        values: dict[str, Any],
    ) -> tuple[Checkpoint, dict[str, Any]]:
        """Fold the step's writes in task order (null writes are already in ``values``)."""
        spec = self.spec
        writes: list[tuple[str, Any]] = []
        finished: list[tuple[str, Sequence[Route]]] = []
        if head is not None and head.null_routes:
            finished.append(("", head.null_routes))
        for t in cp.tasks:
            o = outcomes.get(t.id)
            if o is not None:
                writes.extend(o.writes)
                finished.append((t.name, o.routes))
            elif views is not None:
                v = views[t.id]
                writes.extend(v.state_writes)
                finished.append((t.name, v.writes[ROUTE]))
        new_values = apply_writes(spec.channels, values, writes) if writes else values
        step = cp.step + 1
        cid = checkpoint_id(after=cp.id)
        barriers = cp.extra.get("barriers", {})
        tasks, barriers = next_tasks(spec, finished, barriers, cid, self.scope.ns, step)
        extra: dict[str, Any] = {"writers": [t.name for t in cp.tasks]}
        if barriers:
            extra["barriers"] = barriers
        if tasks and self._hits(self.after, cp.tasks):
            extra["breakpoint"] = "after"
        elif self._hits(self.before, tasks):
            extra["breakpoint"] = "before"
        new_cp = self._checkpoint(cp, cid, step, "loop", new_values, tasks, extra)
        await self._save_cp(new_cp)
        if self.scope.sink is not None:
            for t in cp.tasks:
                o = outcomes.get(t.id)
                if o is not None:
                    self._emit("updates", {t.name: dict(o.writes) or None})
            self._emit("values", lambda: self._output(new_values))
        return new_cp, new_values
