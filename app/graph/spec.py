"""The compiled topology: everything the runner needs, precomputed once by ``compile()``.

Nothing here is looked up per step: call signatures (state vs state+config, sync vs async),
static successors, branches, join barriers and channels are resolved when the graph compiles.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.graph.channels import Channel
from app.graph.schema import StateSchema

if TYPE_CHECKING:
    from app.graph.compiled import CompiledStateGraph

__all__ = ["BranchSpec", "Callee", "GraphSpec", "JoinSpec", "NodeSpec", "callee_of"]


@dataclass(frozen=True, slots=True)
class Callee:
    """A user function with its calling convention resolved.

    Attributes:
        fn: the function.
        is_async: it returns an awaitable (``async def`` or async ``__call__``).
        config_mode: 0 = ``fn(state)``, 1 = ``fn(state, config)``, 2 = ``fn(state, config=...)``.
    """

    fn: Callable[..., Any]
    is_async: bool
    config_mode: int


def _is_async(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def callee_of(fn: Callable[..., Any]) -> Callee:
    """Resolve how to call ``fn``: with or without the config, awaited or not."""
    mode = 0
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 and (
        positional[1].name == "config" or positional[1].default is inspect.Parameter.empty
    ):
        mode = 1
    elif any(p.name == "config" and p.kind is p.KEYWORD_ONLY for p in params) or any(
        p.kind is p.VAR_KEYWORD for p in params
    ):
        mode = 2 if any(p.name == "config" for p in params) else 0
    return Callee(fn, _is_async(fn), mode)


def literal_targets(fn: Any) -> tuple[str, ...] | None:
    """Return the node names in a ``Literal[...]`` / ``Command[Literal[...]]`` return annotation."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:
        return None
    if hint is None:
        return None
    origin = typing.get_origin(hint)
    if origin is not None and getattr(origin, "__name__", "") == "Command":
        args = typing.get_args(hint)
        hint = args[0] if args else None
    if typing.get_origin(hint) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(hint))
    return None


@dataclass(frozen=True, slots=True)
class BranchSpec:
    """A conditional edge: ``path(state)`` picks the next node(s).

    Attributes:
        path: the routing function.
        path_map: maps path results to node names; None when results are node names.
        ends: the possible targets (for drawing), None when unknown.
    """

    path: Callee
    path_map: Mapping[Hashable, str] | None
    ends: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class JoinSpec:
    """``add_edge([a, b], c)``: c runs once every source has finished since c last ran."""

    key: str
    sources: frozenset[str]
    target: str


@dataclass(slots=True)
class NodeSpec:
    """One node (or START) of a compiled graph."""

    name: str
    callee: Callee | None
    subgraph: CompiledStateGraph | None = None
    edges: tuple[str, ...] = ()
    branches: tuple[BranchSpec, ...] = ()
    joins: tuple[str, ...] = ()
    destinations: tuple[str, ...] | None = None
    index: int = 0


@dataclass(slots=True)
class GraphSpec:
    """A validated graph, ready to run."""

    state: StateSchema
    input: StateSchema
    output: StateSchema
    channels: dict[str, Channel]
    nodes: dict[str, NodeSpec]
    start: NodeSpec
    joins: dict[str, JoinSpec]
    input_keys: frozenset[str]
    output_keys: tuple[str, ...]
    initial: tuple[tuple[str, Channel], ...] = ()
    finish: tuple[str, ...] = ()

    def initial_values(self) -> dict[str, Any]:
        """Fresh starting values of the channels that have one (reducer keys: ``[]``...)."""
        return {key: channel.initial() for key, channel in self.initial}
