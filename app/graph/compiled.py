"""`CompiledStateGraph`: the public calls of a compiled graph.

One async core (`runner.execute`); the sync calls are thin wrappers that run it on the calling
thread's cached event loop (`app.checkpoint.base.run_sync`), so a sync call neither creates a
loop nor hops threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from app.checkpoint.base import Checkpointer
from app.graph import runner, store
from app.graph.bridge import collect as _collect
from app.graph.bridge import sync as _sync
from app.graph.drawing import DrawableGraph, drawable
from app.graph.errors import CheckpointerRequiredError, InvalidConfigError
from app.graph.snapshot import checkpoint_config, empty_snapshot, snapshot
from app.graph.spec import GraphSpec
from app.graph.stream import StreamSink
from app.graph.types import RunResult, StateSnapshot
from app.graph.updates import build_update, infer_as_node

if TYPE_CHECKING:
    from app.graph.state import StateGraph

__all__ = ["CompiledStateGraph"]

_INTERRUPT_KEY = "__interrupt__"
_DONE = object()


class CompiledStateGraph:
    """A validated graph, ready to run. Made by `StateGraph.compile`.

    Attributes:
        name: the graph's name.
        checkpointer: the saver threads are stored in (None: no persistence).
        interrupt_before: nodes to pause before (compile-time breakpoints; ``("*",)`` = all).
        interrupt_after: nodes to pause after.
        builder: the `StateGraph` it was compiled from.
    """

    def __init__(
        self,
        spec: GraphSpec,
        *,
        checkpointer: Checkpointer | None,
        interrupt_before: tuple[str, ...],
        interrupt_after: tuple[str, ...],
        name: str,
        builder: StateGraph,
    ) -> None:
        self.spec = spec
        self.checkpointer = checkpointer
        self.interrupt_before = interrupt_before
        self.interrupt_after = interrupt_after
        self.name = name
        self.builder = builder

    def __repr__(self) -> str:
        return f"<CompiledStateGraph {self.name!r} nodes={list(self.nodes)}>"

    @property
    def nodes(self) -> tuple[str, ...]:
        """The node names, in declaration order."""
        return tuple(self.spec.nodes)

    def with_checkpointer(self, checkpointer: Checkpointer | None) -> CompiledStateGraph:
        """Return a cheap copy of this graph bound to another saver (the topology is shared)."""
        clone = copy.copy(self)
        clone.checkpointer = checkpointer
        return clone

    # ------------------------------------------------------------------ runs

    async def arun(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        interrupt_before: Sequence[str] | str | None = None,
        interrupt_after: Sequence[str] | str | None = None,
        durability: str | None = None,
    ) -> RunResult:
        """Run the thread selected by ``config`` with ``input``; report how it ended.

        ``input`` is new input (dict), None (start with empty input on a new thread, D1, or
        continue a paused one), ``Command(resume=..., update=..., goto=...)``, or a plain value
        that answers the one pending interrupt (D2).

        Args:
            input: see above.
            config: ``{"configurable": {"thread_id": ..., "checkpoint_id": ...}}`` and
                ``"recursion_limit"`` (default 25).
            interrupt_before: breakpoints for this call (``"*"`` = every node).
            interrupt_after: breakpoints for this call.
            durability: "sync" (default: every checkpoint saved before the next step),
                "async" (saved while the next step runs) or "exit" (only at the end).

        Returns:
            The status ("completed", "interrupted", "paused"), output values, pending
            interrupts in task order, next tasks and the head checkpoint id.

        Raises:
            InvalidResumeError, InvalidUpdateError, InvalidConfigError,
            CheckpointerRequiredError: before anything is written.
            GraphRecursionError: too many supersteps.
            Exception: a node's own exception, unchanged (its error is saved as a pending
                write, so ``input=None`` retries the failed task).
        """
        end = await runner.execute(
            self,
            input,
            config,
            interrupt_before=_names(interrupt_before),
            interrupt_after=_names(interrupt_after),
            durability=durability,
        )
        end.raise_if_nested_pause()
        return RunResult(end.status, end.values, end.interrupts, end.next, end.checkpoint_id)

    async def ainvoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        interrupt_before: Sequence[str] | str | None = None,
        interrupt_after: Sequence[str] | str | None = None,
        durability: str | None = None,
    ) -> dict[str, Any]:
        """Run like `arun` and return the state values.

        When questions are pending the result also has ``"__interrupt__"``: a tuple of
        `Interrupt` in task order. A static breakpoint adds no key.
        """
        result = await self.arun(
            input,
            config,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            durability=durability,
        )
        if result.interrupts:
            return {**result.values, _INTERRUPT_KEY: result.interrupts}
        values: dict[str, Any] = result.values
        return values

    def invoke(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        interrupt_before: Sequence[str] | str | None = None,
        interrupt_after: Sequence[str] | str | None = None,
        durability: str | None = None,
    ) -> dict[str, Any]:
        """Sync `ainvoke`."""
        return _sync(
            self.ainvoke(
                input,
                config,
                interrupt_before=interrupt_before,
                interrupt_after=interrupt_after,
                durability=durability,
            )
        )

    async def nested_run(self, input: Any) -> dict[str, Any]:
        """Run as a subgraph inside the current task (namespace ``node:task_id``).

        Raises:
            GraphInterrupt: the subgraph paused; the parent task pauses with its questions.
        """
        end = await runner.execute(self, input, None, subgraph=True)
        end.raise_if_nested_pause()
        return end.values

    async def astream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] = "values",
        subgraphs: bool = False,
        interrupt_before: Sequence[str] | str | None = None,
        interrupt_after: Sequence[str] | str | None = None,
        durability: str | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Run like `ainvoke`, yielding progress.

        ``stream_mode="values"`` yields the state after the input and after each step;
        ``"updates"`` yields ``{node: update}`` per finished task; both yield
        ``{"__interrupt__": (Interrupt, ...)}`` for a paused task (``()`` for a breakpoint).
        A list of modes yields ``(mode, chunk)``; ``subgraphs=True`` prefixes the namespace.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue()
        sink = StreamSink(stream_mode, queue.put_nowait, subgraphs=subgraphs)
        task = asyncio.ensure_future(
            runner.execute(
                self,
                input,
                config,
                interrupt_before=_names(interrupt_before),
                interrupt_after=_names(interrupt_after),
                durability=durability,
                sink=sink,
            )
        )
        task.add_done_callback(lambda _: queue.put_nowait(_DONE))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                yield item
            task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def stream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] = "values",
        subgraphs: bool = False,
        interrupt_before: Sequence[str] | str | None = None,
        interrupt_after: Sequence[str] | str | None = None,
        durability: str | None = None,
    ) -> Iterator[Any]:
        """Sync `astream`."""
        agen = self.astream(
            input,
            config,
            stream_mode=stream_mode,
            subgraphs=subgraphs,
            interrupt_before=interrupt_before,
            interrupt_after=interrupt_after,
            durability=durability,
        )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # inside a running loop: collect on a helper thread, then yield
            yield from _sync(_collect(agen))
            return

        async def step() -> tuple[bool, Any]:
            try:
                return True, await agen.__anext__()
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, item = _sync(step())
                if not more:
                    break
                yield item
        finally:
            _sync(agen.aclose())

    # ------------------------------------------------------------------ state

    def _thread(self, config: dict[str, Any] | None, what: str) -> tuple[Checkpointer, str, str]:
        if self.checkpointer is None:
            raise CheckpointerRequiredError(
                f"{what} needs a checkpointer: pass `checkpointer=` to compile()"
            )
        conf = (config or {}).get("configurable") or {}
        if conf.get("thread_id") is None:
            raise InvalidConfigError(
                f"{what} needs a config with {{'configurable': {{'thread_id': ...}}}}"
            )
        return self.checkpointer, str(conf["thread_id"]), conf.get("checkpoint_ns") or ""

    def _spec_at(self, ns: str) -> GraphSpec:
        """The spec of the (sub)graph whose checkpoints live in namespace ``ns``."""
        spec = self.spec
        for part in ns.split("|") if ns else ():
            node = spec.nodes.get(part.split(":", 1)[0])
            if node is None or node.subgraph is None:
                break
            spec = node.subgraph.spec
        return spec

    async def aget_state(self, config: dict[str, Any], *, subgraphs: bool = False) -> StateSnapshot:
        """Return the thread's state (an unknown thread gives an empty snapshot).

        Without ``checkpoint_id`` in ``config``: the live view of the head (values with the
        finished tasks' writes, ``next`` = tasks still to run, ``interrupts`` = questions still
        waiting). With it: the record view of that checkpoint.

        Args:
            config: selects the thread (and optionally ``checkpoint_id``, ``checkpoint_ns``).
            subgraphs: show an interrupted subgraph task's own snapshot in ``tasks[i].state``.

        Raises:
            CheckpointerRequiredError: no checkpointer.
            InvalidConfigError: no thread_id, or an unknown checkpoint_id.
        """
        saver, thread, ns = self._thread(config, "get_state")
        at = config["configurable"].get("checkpoint_id")
        ct = await store.read_checkpoint(saver, thread, ns, at)
        if ct is None:
            if at is not None:
                raise InvalidConfigError(f"Unknown checkpoint_id {at!r} for thread {thread!r}")
            return empty_snapshot(thread, ns)
        spec = self._spec_at(ns)
        nested: dict[str, Any] = {}
        if subgraphs:
            for t in ct.checkpoint.tasks:
                node = spec.nodes.get(t.name)
                if node is None or node.subgraph is None:
                    continue
                sub_ns = f"{t.name}:{t.id}" if not ns else f"{ns}|{t.name}:{t.id}"
                cfg = {"configurable": {"thread_id": thread, "checkpoint_ns": sub_ns}}
                state = await self.aget_state(cfg, subgraphs=True)
                if state.created_at is not None:
                    nested[t.id] = state
        return snapshot(spec, ct, live=at is None, subgraph_states=nested)

    def get_state(self, config: dict[str, Any], *, subgraphs: bool = False) -> StateSnapshot:
        """Sync `aget_state`."""
        return _sync(self.aget_state(config, subgraphs=subgraphs))

    async def aget_state_history(
        self,
        config: dict[str, Any],
        *,
        limit: int | None = None,
        before: dict[str, Any] | str | None = None,
    ) -> AsyncIterator[StateSnapshot]:
        """Yield the thread's checkpoints, newest first (record views).

        Args:
            config: selects the thread.
            limit: at most this many.
            before: only checkpoints older than this one (a config or a checkpoint id).
        """
        saver, thread, ns = self._thread(config, "get_state_history")
        if isinstance(before, dict):
            before = (before.get("configurable") or {}).get("checkpoint_id")
        spec = self._spec_at(ns)
        for ct in await store.read_history(saver, thread, ns, before, limit):
            yield snapshot(spec, ct, live=False)

    def get_state_history(
        self,
        config: dict[str, Any],
        *,
        limit: int | None = None,
        before: dict[str, Any] | str | None = None,
    ) -> Iterator[StateSnapshot]:
        """Sync `aget_state_history` (returns an iterator over a list)."""

        async def collect() -> list[StateSnapshot]:
            return [s async for s in self.aget_state_history(config, limit=limit, before=before)]

        return iter(_sync(collect()))

    async def aupdate_state(
        self, config: dict[str, Any], values: Any, as_node: str | None = None
    ) -> dict[str, Any]:
        """Write ``values`` as if ``as_node`` had returned them; save an "update" checkpoint.

        ``as_node`` defaults to the graph's only node, else the node that ran last.
        ``as_node=END`` with ``values=None`` cancels the pending questions: the finished
        tasks' writes are kept and their successors scheduled. With ``checkpoint_id`` in
        ``config`` the update forks from that checkpoint.

        Returns:
            The config of the new checkpoint.

        Raises:
            CheckpointerRequiredError, InvalidConfigError: as for `get_state`.
            InvalidUpdateError: bad values, unknown ``as_node`` or an ambiguous inference.
        """
        saver, thread, ns = self._thread(config, "update_state")
        at = config["configurable"].get("checkpoint_id")
        ct = await store.read_checkpoint(saver, thread, ns, at)
        if ct is None and at is not None:
            raise InvalidConfigError(f"Unknown checkpoint_id {at!r} for thread {thread!r}")
        spec = self._spec_at(ns)
        node = as_node if as_node is not None else infer_as_node(spec, ct)
        cp = await build_update(spec, ct, thread, ns, values, node, config, runner.now_iso())
        await store.write_checkpoint(saver, cp)
        return checkpoint_config(thread, ns, cp.id)

    def update_state(
        self, config: dict[str, Any], values: Any, as_node: str | None = None
    ) -> dict[str, Any]:
        """Sync `aupdate_state`."""
        return _sync(self.aupdate_state(config, values, as_node))

    # ------------------------------------------------------------------ drawing

    def get_graph(self, *, xray: bool = False) -> DrawableGraph:
        """Return the graph's nodes and edges, with ``draw_mermaid()``."""
        return drawable(self.spec)


def _names(value: Sequence[str] | str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)
