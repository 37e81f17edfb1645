"""The superstep loop: the only code that calls the checkpointer port.

One run: load the thread's head, decide what the input means (`resume.plan_run`), store any
answers, then repeat: run the step's open tasks (concurrently), save each task's outcome as
pending writes the moment it finishes, and when every task has finished fold their writes in
task order into the next checkpoint. A paused or failed task ends the run with the head left
at the step's checkpoint, so a later call re-runs exactly the tasks that did not finish.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.checkpoint.base import (
    ERROR,
    INTERRUPT,
    NULL_TASK_ID,
    RESUME,
    ROUTE,
    Checkpoint,
    Checkpointer,
    CheckpointTuple,
    InterruptRecord,
    TaskSpec,
)
from app.graph.channels import apply_writes
from app.graph.errors import (
    GraphInterrupt,
    GraphRecursionError,
    InvalidConfigError,
    InvalidUpdateError,
    ParentCommand,
)
from app.graph.head import HeadView, TaskView, task_ns
from app.graph.ids import checkpoint_id
from app.graph.interrupt import RunScope, TaskScope, _current_task, current_task
from app.graph.resume import Answer, Plan, plan_run
from app.graph.routing import Route, call, next_tasks, node_routes, retask, update_writes
from app.graph.spec import GraphSpec
from app.graph.stream import StreamSink
from app.graph.types import START, Command, Interrupt, RunStatus

if TYPE_CHECKING:
    from app.graph.compiled import CompiledStateGraph

__all__ = ["RunEnd", "execute", "read_checkpoint", "read_history", "write_checkpoint"]

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


@dataclass(slots=True)
class _Outcome:
    task: TaskSpec
    status: int = 0  # 0 done, 1 paused, 2 failed, 3 parent command
    writes: list[tuple[str, Any]] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    interrupts: tuple[Interrupt, ...] = ()
    records: list[InterruptRecord] = field(default_factory=list)
    pending: tuple[InterruptRecord, ...] = ()
    error: BaseException | None = None
    command: Command[Any] | None = None


def now_iso() -> str:
    """The current UTC time, ISO-8601 with microseconds (a checkpoint's created_at)."""
    return datetime.now(UTC).isoformat()


def _scope(graph: CompiledStateGraph, config: dict[str, Any] | None, durability: str | None,
           sink: StreamSink | None) -> tuple[RunScope, str | None, bool]:
    parent = current_task()
    if parent is not None and graph.checkpointer is None:
        run = parent.run
        scope = RunScope(
            saver=run.saver,
            thread_id=run.thread_id,
            ns=parent.ns,
            config=run.config,
            durability=run.durability,
            recursion_limit=run.recursion_limit,
            sink=run.sink if run.sink is not None and run.sink.subgraphs else None,
            ns_path=tuple(parent.ns.split("|")),
            parents={**run.parents, run.ns: run.checkpoint_id or ""},
        )
        return scope, None, True
    cfg = config or {}
    conf = cfg.get("configurable") or {}
    saver = graph.checkpointer
    thread = conf.get("thread_id")
    if saver is not None and thread is None:
        raise InvalidConfigError(
            "A checkpointer is set: the config needs {'configurable': {'thread_id': ...}}"
        )
    ns = conf.get("checkpoint_ns") or ""
    scope = RunScope(
        saver=saver,
        thread_id=None if thread is None else str(thread),
        ns=ns,
        config=cfg,
        durability=durability or "sync",
        recursion_limit=int(cfg.get("recursion_limit", 25)),
        sink=sink,
        ns_path=tuple(ns.split("|")) if ns else (),
    )
    return scope, conf.get("checkpoint_id"), False


async def execute(
    graph: CompiledStateGraph,
    value: Any,
    config: dict[str, Any] | None,
    *,
    interrupt_before: Sequence[str] | None = None,
    interrupt_after: Sequence[str] | None = None,
    durability: str | None = None,
    sink: StreamSink | None = None,
) -> RunEnd:
    """Run ``graph`` on one thread until it completes, pauses or fails.

    Raises:
        The node's own exception when a node fails (after its error was saved), and the
        errors of `resume.plan_run` (before anything was saved).
    """
    scope, at, nested = _scope(graph, config, durability, sink)
    run = _Run(graph, scope, nested, interrupt_before, interrupt_after)
    try:
        return await run.start(value, at)
    finally:
        await run.flush()


class _Run:
    __slots__ = (
        "after",
        "before",
        "buffer",
        "graph",
        "nested",
        "put",
        "saver",
        "scope",
        "spec",
        "steps",
        "unsaved",
    )

    def __init__(
        self,
        graph: CompiledStateGraph,
        scope: RunScope,
        nested: bool,
        before: Sequence[str] | None,
        after: Sequence[str] | None,
    ) -> None:
        self.graph = graph
        self.spec: GraphSpec = graph.spec
        self.scope = scope
        self.saver: Checkpointer | None = scope.saver
        self.nested = nested
        self.before = frozenset(graph.interrupt_before if before is None else before)
        self.after = frozenset(graph.interrupt_after if after is None else after)
        self.steps = 0
        self.put: asyncio.Future[None] | None = None
        self.unsaved: Checkpoint | None = None
        self.buffer: list[tuple[str, list[tuple[str, Any]]]] = []

    # ----------------------------------------------------------------- persistence

    async def _save_cp(self, cp: Checkpoint) -> None:
        saver = self.saver
        if saver is None:
            return
        mode = self.scope.durability
        if mode == "exit":
            self.unsaved, self.buffer = cp, []
            return
        if self.put is not None:
            await self.put
            self.put = None
        if mode == "async":
            self.put = asyncio.ensure_future(saver.aput(cp))
        else:
            await saver.aput(cp)

    async def _save_writes(self, cp_id: str, task: str, writes: list[tuple[str, Any]]) -> None:
        saver = self.saver
        if saver is None:
            return
        unsaved = self.unsaved
        if unsaved is not None and unsaved.id == cp_id:
            self.buffer.append((task, writes))
            return
        if self.put is not None:
            await self.put
        await saver.aput_writes(self.scope.thread_id or "", self.scope.ns, cp_id, task, writes)

    async def flush(self) -> None:
        """Finish deferred saves (durability "async" and "exit")."""
        if self.put is not None:
            put, self.put = self.put, None
            await put
        if self.unsaved is not None and self.saver is not None:
            cp, self.unsaved = self.unsaved, None
            await self.saver.aput(cp)
            for task, writes in self.buffer:
                await self.saver.aput_writes(self.scope.thread_id or "", cp.ns, cp.id, task, writes)
            self.buffer = []

    async def _load(self, ns: str, at: str | None = None) -> CheckpointTuple | None:
        assert self.saver is not None
        return await self.saver.aget_tuple(self.scope.thread_id or "", ns, at)

    # ----------------------------------------------------------------- start

    async def start(self, value: Any, at: str | None) -> RunEnd:
        spec = self.spec
        ct = await self._load(self.scope.ns, at) if self.saver is not None else None
        if at is not None and ct is None:
            raise InvalidConfigError(f"Unknown checkpoint_id {at!r} for this thread")
        fork = False
        if at is not None and ct is not None:
            latest = await self._load(self.scope.ns)
            fork = latest is not None and latest.checkpoint.id != ct.checkpoint.id
            if fork:
                ct = CheckpointTuple(ct.checkpoint)
        head = HeadView.of(ct) if ct is not None else None
        if self.nested and head is not None:
            value = None  # a subgraph with a checkpoint continues from it, its input is ignored
        elif self.nested and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in spec.input_keys}
        plan = plan_run(spec, head, value, has_saver=self.saver is not None)
        if plan.kind == "noop":
            assert head is not None
            return self._end("completed", head.tuple.checkpoint, head.tuple.checkpoint.values)
        if plan.kind == "new":
            return await self._new(plan, head)
        assert head is not None
        if fork:
            head = await self._fork(head.tuple.checkpoint)
        await self._prepare(head, plan)
        self.scope.checkpoint_id = head.tuple.checkpoint.id
        sink = self.scope.sink
        if sink is not None and sink.wants("values"):
            sink.emit(self.scope.ns_path, "values", self._output(head.live_values(spec.channels)))
        return await self._loop(head.tuple.checkpoint, head)

    async def _fork(self, cp: Checkpoint) -> HeadView:
        cid = checkpoint_id(after=cp.id)
        extra = {k: v for k, v in cp.extra.items() if k != "breakpoint"}
        fork = Checkpoint(
            cp.thread_id, cp.ns, cid, cp.id, cp.step, "fork", dict(cp.values),
            retask(cp.tasks, cid, cp.ns, cp.step), extra, self._meta("fork", cp.step), now_iso(),
        )
        await self._save_cp(fork)
        return HeadView.of(CheckpointTuple(fork))

    async def _prepare(self, head: HeadView, plan: Plan) -> None:
        """Store answers and null writes (every check has passed, see `plan_run`)."""
        cp = head.tuple.checkpoint
        if plan.answers:
            await self._deliver(head, plan.answers)
        if plan.writes or plan.routes:
            null = dict(head.null)
            channels = self.spec.channels
            for key, val in plan.writes:
                if key in null:
                    null[key] = channels[key].reduce(null[key], [val])
                else:
                    null[key] = val
            if plan.routes:
                null[ROUTE] = list(null.get(ROUTE) or ()) + plan.routes
            head.null = null
            await self._save_writes(cp.id, NULL_TASK_ID, list(null.items()))

    async def _deliver(self, head: HeadView, answers: list[Answer]) -> None:
        """Append each answer to the RESUME list of the task that asked (maybe in a subgraph)."""
        cp = head.tuple.checkpoint
        prune: dict[tuple[str, str], set[str]] = {}
        depth = len(self.scope.ns.split("|")) if self.scope.ns else 0
        for ans in answers:
            rec_ns = ans.record["ns"]
            if rec_ns == ans.task.ns:
                resume = [*ans.task.answers, ans.value]
                ans.task.writes[RESUME] = resume
                await self._save_writes(cp.id, ans.task.spec.id, [(RESUME, resume)])
                continue
            parts = rec_ns.split("|")
            owner_ns = "|".join(parts[:-1])
            owner_tid = parts[-1].split(":", 1)[1]
            owner_ct = await self._load(owner_ns)
            if owner_ct is not None:
                view = next(
                    (t for t in HeadView.of(owner_ct).tasks if t.spec.id == owner_tid), None
                )
                resume = [*(view.answers if view else []), ans.value]
                await self.saver.aput_writes(  # type: ignore[union-attr]
                    self.scope.thread_id or "", owner_ns, owner_ct.checkpoint.id, owner_tid,
                    [(RESUME, resume)],
                )
            for level in range(depth, len(parts) - 1):
                key = ("|".join(parts[:level]), parts[level].split(":", 1)[1])
                prune.setdefault(key, set()).add(ans.record["id"])
        for (level_ns, tid), ids in prune.items():
            if level_ns == self.scope.ns:
                views, level_cp = head.tasks, cp
            else:
                level_ct = await self._load(level_ns)
                if level_ct is None:
                    continue
                views, level_cp = HeadView.of(level_ct).tasks, level_ct.checkpoint
            for view in views:
                if view.spec.id == tid:
                    left = [r for r in view.records if r["id"] not in ids]
                    view.writes[INTERRUPT] = left
                    await self.saver.aput_writes(  # type: ignore[union-attr]
                        self.scope.thread_id or "", level_ns, level_cp.id, tid,
                        [(INTERRUPT, left)],
                    )

    async def _new(self, plan: Plan, head: HeadView | None) -> RunEnd:
        spec = self.spec
        prev = head.tuple.checkpoint if head is not None else None
        values = spec.initial_values()
        if prev is not None:
            values.update(prev.values)
        if plan.writes:
            values = apply_writes(spec.channels, values, plan.writes)
        routes = list(plan.routes)
        if plan.from_start:
            routes.extend(
                await node_routes(spec, spec.start, [], (), values, self.scope.config)
            )
        step = prev.step + 1 if prev is not None else -1
        cid = checkpoint_id(after=prev.id if prev is not None else None)
        barriers = prev.extra.get("barriers", {}) if prev is not None else {}
        tasks, barriers = next_tasks(
            spec, [(START, routes)], barriers, cid, self.scope.ns, step
        )
        extra: dict[str, Any] = {"writers": [START]}
        if barriers:
            extra["barriers"] = barriers
        cp = Checkpoint(
            self.scope.thread_id or "", self.scope.ns, cid, prev.id if prev else None, step,
            "input", values, tasks, extra, self._meta("input", step), now_iso(),
        )
        self.steps = 1
        paused = self._breakpoint(cp, self.before, cp.tasks)
        if paused:
            cp = replace(cp, extra={**extra, "breakpoint": "before"})
        await self._save_cp(cp)
        self.scope.checkpoint_id = cid
        sink = self.scope.sink
        if sink is not None and sink.wants("values"):
            sink.emit(self.scope.ns_path, "values", self._output(values))
        if paused:
            return self._pause(cp)
        return await self._loop(cp, None)

    # ----------------------------------------------------------------- the loop

    def _meta(self, source: str, step: int) -> dict[str, Any]:
        return {"source": source, "step": step, "parents": dict(self.scope.parents)}

    def _breakpoint(self, cp: Checkpoint, names: frozenset[str], tasks: Any) -> bool:
        if not names or not cp.tasks:
            return False
        if "*" in names:
            return True
        return any(t.name in names for t in tasks)

    def _output(self, values: dict[str, Any]) -> dict[str, Any]:
        keys = self.spec.output_keys
        return {k: values[k] for k in keys if k in values}

    def _end(
        self,
        status: RunStatus,
        cp: Checkpoint,
        values: Any,
        interrupts: tuple[Interrupt, ...] = (),
        records: tuple[InterruptRecord, ...] = (),
        next_: tuple[str, ...] = (),
    ) -> RunEnd:
        return RunEnd(
            status, self._output(values), interrupts, records, next_,
            cp.id if self.saver is not None else None, self.nested,
        )

    def _pause(self, cp: Checkpoint) -> RunEnd:
        sink = self.scope.sink
        if sink is not None and sink.wants("updates"):
            sink.emit(self.scope.ns_path, "updates", {_INTERRUPT_KEY: ()})
        return self._end("paused", cp, cp.values, next_=tuple(t.name for t in cp.tasks))

    async def _loop(self, cp: Checkpoint, head: HeadView | None) -> RunEnd:
        spec = self.spec
        channels = spec.channels
        limit = self.scope.recursion_limit
        values: dict[str, Any] = (
            head.step_values(channels) if head is not None else cp.values  # type: ignore[assignment]
        )
        while True:
            if not cp.tasks:
                return self._end("completed", cp, values)
            views = {t.spec.id: t for t in head.tasks} if head is not None else None
            todo = (
                [t for t in cp.tasks if not views[t.id].finished] if views is not None
                else list(cp.tasks)
            )
            outcomes: dict[str, _Outcome] = {}
            if todo:
                if self.steps >= limit:
                    raise GraphRecursionError(
                        f"Recursion limit of {limit} reached without hitting a stop condition. "
                        "You can increase the limit by setting the `recursion_limit` config key."
                    )
                self.steps += 1
                outcomes = await self._run_tasks(cp, todo, views, values)
                end = self._settle(cp, head, todo, outcomes, values)
                if end is not None:
                    return end
            cp, values = await self._finish_step(cp, head, views, outcomes, values)
            head = None
            if cp.extra.get("breakpoint"):
                return self._pause(cp)

    def _settle(
        self,
        cp: Checkpoint,
        head: HeadView | None,
        todo: list[TaskSpec],
        outcomes: dict[str, _Outcome],
        values: dict[str, Any],
    ) -> RunEnd | None:
        """Return how the run ends if a task paused or failed, None if the step can finish."""
        failed = paused = parent = None
        for t in todo:
            o = outcomes[t.id]
            if o.status == 2 and failed is None:
                failed = o
            elif o.status == 1 and paused is None:
                paused = o
            elif o.status == 3 and parent is None:
                parent = o
        if failed is None and paused is None and parent is None:
            return None
        sink = self.scope.sink
        if sink is not None and sink.wants("updates"):
            for t in todo:
                o = outcomes[t.id]
                if o.status == 0:
                    sink.emit(self.scope.ns_path, "updates", {t.name: dict(o.writes) or None})
                elif o.status == 1:
                    sink.emit(self.scope.ns_path, "updates", {_INTERRUPT_KEY: o.interrupts})
        if failed is not None:
            assert failed.error is not None
            raise failed.error
        if parent is not None:
            assert parent.command is not None
            raise ParentCommand(parent.command)
        live = dict(values)
        writes = [
            w
            for t in cp.tasks
            for w in (
                outcomes[t.id].writes if t.id in outcomes and outcomes[t.id].status == 0
                else self._view_writes(head, t.id)
            )
        ]
        if writes:
            try:
                live = apply_writes(self.spec.channels, values, writes)
            except InvalidUpdateError:
                live.update(writes)
        interrupts = tuple(i for t in todo for i in outcomes[t.id].interrupts)
        records = tuple(r for t in todo for r in outcomes[t.id].pending)
        if sink is not None and sink.wants("values"):
            out = self._output(live)
            for t in todo:
                if outcomes[t.id].status == 1:
                    sink.emit(
                        self.scope.ns_path, "values",
                        {**out, _INTERRUPT_KEY: outcomes[t.id].interrupts},
                    )
        next_ = tuple(
            t.name for t in cp.tasks if t.id in outcomes and outcomes[t.id].status != 0
        )
        return self._end("interrupted", cp, live, interrupts, records, next_)

    @staticmethod
    def _view_writes(head: HeadView | None, tid: str) -> list[tuple[str, Any]]:
        if head is None:
            return []
        for t in head.tasks:
            if t.spec.id == tid and t.finished:
                return t.state_writes
        return []

    async def _finish_step(
        self,
        cp: Checkpoint,
        head: HeadView | None,
        views: dict[str, TaskView] | None,
        outcomes: dict[str, _Outcome],
        values: dict[str, Any],
    ) -> tuple[Checkpoint, dict[str, Any]]:
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
        tasks, barriers = next_tasks(
            spec, finished, cp.extra.get("barriers", {}), cid, self.scope.ns, step
        )
        extra: dict[str, Any] = {"writers": [t.name for t in cp.tasks]}
        if barriers:
            extra["barriers"] = barriers
        if tasks and self.after and self._breakpoint(cp, self.after, cp.tasks):
            extra["breakpoint"] = "after"
        elif tasks and self.before and self._breakpoint(cp, self.before, tasks):
            extra["breakpoint"] = "before"
        new_cp = Checkpoint(
            cp.thread_id, cp.ns, cid, cp.id, step, "loop", new_values, tasks, extra,
            self._meta("loop", step), now_iso(),
        )
        await self._save_cp(new_cp)
        self.scope.checkpoint_id = cid
        sink = self.scope.sink
        if sink is not None:
            ns_path = self.scope.ns_path
            if sink.wants("updates"):
                for t in cp.tasks:
                    o = outcomes.get(t.id)
                    if o is not None:
                        sink.emit(ns_path, "updates", {t.name: dict(o.writes) or None})
            if sink.wants("values"):
                sink.emit(ns_path, "values", self._output(new_values))
        return new_cp, new_values

    # ----------------------------------------------------------------- tasks

    async def _run_tasks(
        self,
        cp: Checkpoint,
        todo: list[TaskSpec],
        views: dict[str, TaskView] | None,
        values: dict[str, Any],
    ) -> dict[str, _Outcome]:
        if len(todo) == 1:
            t = todo[0]
            return {t.id: await self._exec(cp, t, views, values, True)}
        done = await asyncio.gather(*(self._exec(cp, t, views, values, False) for t in todo))
        return {o.task.id: o for o in done}

    async def _exec(
        self,
        cp: Checkpoint,
        task: TaskSpec,
        views: dict[str, TaskView] | None,
        values: dict[str, Any],
        inline: bool,
    ) -> _Outcome:
        spec = self.spec
        node = spec.nodes[task.name]
        view = views.get(task.id) if views is not None else None
        ns = task_ns(self.scope.ns, task.name, task.id)
        scope = TaskScope(self.scope, task.name, task.id, ns, view.answers if view else [])
        out = _Outcome(task)
        config = self.scope.config
        token = _current_task.set(scope)
        try:
            arg = task.arg if task.path[0] == "push" else spec.state.to_input(values)
            try:
                if node.subgraph is not None:
                    ret: Any = await node.subgraph.nested_run(arg)
                    if isinstance(ret, dict):
                        ret = {k: v for k, v in ret.items() if k in spec.channels}
                else:
                    callee = node.callee
                    assert callee is not None
                    if callee.is_async:
                        ret = await call(callee, arg, config)
                    elif inline:
                        ret = call(callee, arg, config)
                        if inspect.isawaitable(ret):
                            ret = await ret
                    else:
                        ret = await asyncio.to_thread(call, callee, arg, config)
                        if inspect.isawaitable(ret):
                            ret = await ret
            except ParentCommand as pc:
                ret = replace(pc.command, graph=None)  # a subgraph routed in this graph
            if isinstance(ret, Command) and ret.graph is not None:
                if ret.graph != Command.PARENT or not self.nested:
                    raise InvalidUpdateError(
                        f"Node '{task.name}' returned Command(graph={ret.graph!r}) but its graph "
                        "has no such parent"
                    )
                out.status, out.command = 3, ret
                return out
            if isinstance(ret, Command):
                update, goto = ret.update, ret.goto
            else:
                update, goto = ret, ()
            writes = update_writes(spec, task.name, update)
            routes = await node_routes(spec, node, writes, goto, values, config)
            out.writes, out.routes = writes, routes
            saved = [*writes, (ROUTE, routes)]
        except GraphInterrupt as gi:
            pending = gi.records or tuple(
                InterruptRecord(
                    id=i.id, value=i.value, node=task.name, ns=ns, schema=i.schema,
                    timeout=i.timeout, has_default=i.has_default,
                    default=i.default if i.has_default else None,
                )
                for i in gi.interrupts
            )
            records = [*scope.records, *(r for r in pending if r["ns"] != ns)]
            if not gi.records:
                records.extend(pending)
            out.status, out.interrupts, out.records, out.pending = 1, gi.interrupts, records, pending
            saved = [(INTERRUPT, records)]
        except Exception as exc:  # noqa: BLE001 - a node's failure is data until the step ends
            out.status, out.error = 2, exc
            saved = [(ERROR, {"type": type(exc).__name__, "message": str(exc)})]
        finally:
            _current_task.reset(token)
        await self._save_writes(cp.id, task.id, saved)
        return out


# --------------------------------------------------------------------- reads and updates
# get_state / get_state_history / update_state go through these, so that this module stays
# the only caller of the checkpointer port.


async def read_checkpoint(
    saver: Checkpointer, thread_id: str, ns: str, checkpoint: str | None
) -> CheckpointTuple | None:
    """Return a checkpoint with its writes (the head when ``checkpoint`` is None)."""
    return await saver.aget_tuple(thread_id, ns, checkpoint)


async def read_history(
    saver: Checkpointer, thread_id: str, ns: str, before: str | None, limit: int | None
) -> list[CheckpointTuple]:
    """Return a thread's checkpoints, newest first."""
    return await saver.alist(thread_id, ns, before=before, limit=limit)


async def write_checkpoint(saver: Checkpointer, checkpoint: Checkpoint) -> None:
    """Save a checkpoint made outside a run (update_state)."""
    await saver.aput(checkpoint)
