"""`StateGraph`: the builder users wire nodes and edges with, and ``compile()`` that validates it."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Self

from app.checkpoint.base import Checkpointer
from app.graph.channels import LastValue
from app.graph.compiled import CompiledStateGraph
from app.graph.errors import InvalidGraphError
from app.graph.schema import StateSchema
from app.graph.spec import BranchSpec, GraphSpec, JoinSpec, NodeSpec, callee_of, literal_targets
from app.graph.types import END, MISSING, START

__all__ = ["StateGraph"]

_RESERVED = frozenset({START, END, "__interrupt__", "__parent__", "__route__", "__resume__"})


class _NodeDef:
    __slots__ = ("action", "destinations")

    def __init__(self, action: Any, destinations: tuple[str, ...] | None) -> None:
        self.action = action
        self.destinations = destinations


class StateGraph:
    """A graph whose nodes read and update a shared state.

    Args:
        state_schema: a TypedDict, dataclass or pydantic model. Keys declared
            ``Annotated[T, reducer]`` fold writes with the reducer; other keys keep the last value.
        input_schema: the keys accepted as input (default: the state's).
        output_schema: the keys returned by ``invoke`` (default: the state's).
    """

    def __init__(
        self,
        state_schema: Any = None,
        *,
        input_schema: Any = None,
        output_schema: Any = None,
    ) -> None:
        self.state_schema = state_schema
        self.input_schema = input_schema
        self.output_schema = output_schema
        self.nodes: dict[str, _NodeDef] = {}
        self.edges: list[tuple[str, str]] = []
        self.joins: list[tuple[tuple[str, ...], str]] = []
        self.branches: list[tuple[str, Callable[..., Any], Any]] = []

    # --------------------------------------------------------------- nodes

    def add_node(
        self,
        node: str | Callable[..., Any] | CompiledStateGraph,
        action: Callable[..., Any] | CompiledStateGraph | None = None,
        *,
        destinations: Sequence[str] | Mapping[str, str] | None = None,
    ) -> Self:
        """Add a node: ``add_node("name", fn)`` or ``add_node(fn)`` (name = ``fn.__name__``).

        ``fn`` is called as ``fn(state)`` or ``fn(state, config)``, sync or async, and returns a
        partial update dict, a ``Command`` or None. A compiled graph is a subgraph node.
        ``destinations`` names where a node's ``Command(goto=...)`` may go (drawing only).

        Raises:
            InvalidGraphError: duplicate or reserved name, or a name without ``:`` / ``|``.
        """
        if not isinstance(node, str):
            action = node
            name = getattr(node, "name", None) if isinstance(node, CompiledStateGraph) else None
            name = name or getattr(node, "__name__", None)
            if not isinstance(name, str):
                raise InvalidGraphError(
                    f"Cannot infer a node name from {node!r}: use add_node(name, fn)"
                )
        else:
            name = node
        if action is None or not (callable(action) or isinstance(action, CompiledStateGraph)):
            raise InvalidGraphError(f"Node '{name}' needs a callable action, got {action!r}")
        if name in _RESERVED:
            raise InvalidGraphError(f"Node name '{name}' is reserved")
        if ":" in name or "|" in name:
            raise InvalidGraphError(f"Node name '{name}' must not contain ':' or '|'")
        if name in self.nodes:
            raise InvalidGraphError(f"Node '{name}' already exists")
        dest: tuple[str, ...] | None = None
        if destinations is not None:
            dest = tuple(destinations)
        elif not isinstance(action, CompiledStateGraph):
            dest = literal_targets(action)
        self.nodes[name] = _NodeDef(action, dest)
        return self

    def add_sequence(
        self, nodes: Sequence[Callable[..., Any] | tuple[str, Callable[..., Any]]]
    ) -> Self:
        """Add nodes and chain them with edges, in order (no edge from START is added).

        Raises:
            InvalidGraphError: the sequence is empty, or a node is invalid.
        """
        if not nodes:
            raise InvalidGraphError("add_sequence() needs at least one node")
        previous: str | None = None
        for item in nodes:
            if isinstance(item, tuple):
                name, fn = item
                self.add_node(name, fn)
            else:
                self.add_node(item)
                name = next(reversed(self.nodes))
            if previous is not None:
                self.add_edge(previous, name)
            previous = name
        return self

    # --------------------------------------------------------------- edges

    def add_edge(self, start_key: str | Sequence[str], end_key: str) -> Self:
        """Add an edge; with a list of sources, ``end_key`` runs once all of them finished.

        Raises:
            InvalidGraphError: END as a source or START as a target.
        """
        if isinstance(start_key, str):
            if start_key == END:
                raise InvalidGraphError("END cannot be the source of an edge")
            if end_key == START:
                raise InvalidGraphError("START cannot be the target of an edge")
            self.edges.append((start_key, end_key))
            return self
        sources = tuple(start_key)
        if not sources:
            raise InvalidGraphError(f"Edge to '{end_key}' has no source")
        if len(sources) == 1:
            return self.add_edge(sources[0], end_key)
        for src in sources:
            if src in (START, END):
                raise InvalidGraphError(f"'{src}' cannot be a source of a join edge")
        if end_key in (START, END):
            raise InvalidGraphError(f"A join edge cannot end at '{end_key}'")
        self.joins.append((sources, end_key))
        return self

    def add_conditional_edges(
        self,
        source: str,
        path: Callable[..., Any],
        path_map: Mapping[Hashable, str] | Sequence[str] | None = None,
    ) -> Self:
        """Route from ``source`` with ``path(state)`` after ``source`` finishes.

        ``path`` returns a node name, END, a list of names, a ``Send`` or a list of Sends.
        ``path_map`` (dict, or list of names) maps its results to node names.

        Raises:
            InvalidGraphError: END as a source.
        """
        if source == END:
            raise InvalidGraphError("END cannot be the source of a conditional edge")
        self.branches.append((source, path, path_map))
        return self

    def set_entry_point(self, key: str) -> Self:
        """Start runs at ``key`` (an edge from START)."""
        return self.add_edge(START, key)

    def set_conditional_entry_point(
        self,
        path: Callable[..., Any],
        path_map: Mapping[Hashable, str] | Sequence[str] | None = None,
    ) -> Self:
        """Pick the first node(s) with ``path(input state)``."""
        return self.add_conditional_edges(START, path, path_map)

    def set_finish_point(self, key: str) -> Self:
        """End runs after ``key`` (an edge to END)."""
        return self.add_edge(key, END)

    # --------------------------------------------------------------- compile

    def compile(
        self,
        checkpointer: Checkpointer | None = None,
        *,
        interrupt_before: Sequence[str] | str | None = None,
        interrupt_after: Sequence[str] | str | None = None,
        name: str | None = None,
    ) -> CompiledStateGraph:
        """Validate the graph and return the runnable ``CompiledStateGraph``.

        Args:
            checkpointer: where threads are saved; needed for interrupts and ``get_state``.
            interrupt_before: pause before these nodes run (``"*"`` for all).
            interrupt_after: pause after these nodes ran (``"*"`` for all).
            name: the graph's name (default "graph").

        Raises:
            InvalidGraphError: no entry point, or an edge, branch, breakpoint or destination
                names an unknown node. The message names it.
        """
        return CompiledStateGraph(
            self._spec(),
            checkpointer=checkpointer,
            interrupt_before=self._breakpoints(interrupt_before, "interrupt_before"),
            interrupt_after=self._breakpoints(interrupt_after, "interrupt_after"),
            name=name or "graph",
            builder=self,
        )

    def _breakpoints(self, names: Sequence[str] | str | None, what: str) -> tuple[str, ...]:
        if names is None:
            return ()
        items = (names,) if isinstance(names, str) else tuple(names)
        if "*" in items:
            return ("*",)
        for n in items:
            if n not in self.nodes:
                raise InvalidGraphError(f"{what} names unknown node '{n}'")
        return items

    def _check_target(self, target: str, where: str) -> None:
        if target != END and target not in self.nodes:
            raise InvalidGraphError(f"{where} points to unknown node '{target}'")

    def _spec(self) -> GraphSpec:
        known = set(self.nodes) | {START}
        for src, dst in self.edges:
            if src not in known:
                raise InvalidGraphError(f"Edge '{src}' -> '{dst}' starts at unknown node '{src}'")
            self._check_target(dst, f"Edge '{src}' -> '{dst}'")
        for sources, dst in self.joins:
            for src in sources:
                if src not in self.nodes:
                    raise InvalidGraphError(f"Join edge to '{dst}' names unknown node '{src}'")
            self._check_target(dst, f"Join edge {list(sources)} -> '{dst}'")
        branch_specs: dict[str, list[BranchSpec]] = {}
        for src, path, path_map in self.branches:
            if src not in known:
                raise InvalidGraphError(f"Conditional edge starts at unknown node '{src}'")
            mapping: Mapping[Hashable, str] | None
            if path_map is None:
                mapping, ends = None, literal_targets(path)
            elif isinstance(path_map, Mapping):
                mapping, ends = dict(path_map), tuple(dict.fromkeys(path_map.values()))
            else:
                mapping = {t: t for t in path_map}
                ends = tuple(path_map)
            for target in ends or ():
                self._check_target(target, f"Conditional edge from '{src}'")
            branch_specs.setdefault(src, []).append(BranchSpec(callee_of(path), mapping, ends))
        if not any(s == START for s, _ in self.edges) and START not in branch_specs:
            raise InvalidGraphError(
                "Graph must have an entry point: add an edge from START (or set_entry_point())"
            )
        for name, node in self.nodes.items():
            for target in node.destinations or ():
                self._check_target(target, f"Destination of node '{name}'")

        joins = {
            f"join:{'+'.join(sources)}:{dst}": JoinSpec(
                f"join:{'+'.join(sources)}:{dst}", frozenset(sources), dst
            )
            for sources, dst in self.joins
        }

        def make(name: str, action: Any, index: int, dest: tuple[str, ...] | None) -> NodeSpec:
            sub = action if isinstance(action, CompiledStateGraph) else None
            return NodeSpec(
                name=name,
                callee=None if sub is not None or action is None else callee_of(action),
                subgraph=sub,
                edges=tuple(dict.fromkeys(d for s, d in self.edges if s == name and d != END)),
                branches=tuple(branch_specs.get(name, ())),
                joins=tuple(k for k, j in joins.items() if name in j.sources),
                destinations=dest,
                index=index,
            )

        nodes = {
            name: make(name, node.action, i, node.destinations)
            for i, (name, node) in enumerate(self.nodes.items())
        }
        state = StateSchema(self.state_schema)
        inp = StateSchema(self.input_schema) if self.input_schema is not None else state
        out = StateSchema(self.output_schema) if self.output_schema is not None else state
        channels = dict(state.channels)
        for extra in (inp, out):
            for key, channel in extra.channels.items():
                if key not in channels or type(channels[key]) is LastValue:
                    channels[key] = channel
        return GraphSpec(
            state=state,
            input=inp,
            output=out,
            channels=channels,
            nodes=nodes,
            start=make(START, None, -1, None),
            joins=joins,
            input_keys=frozenset(inp.keys or channels),
            output_keys=tuple(out.keys or channels),
            initial=tuple((k, c) for k, c in channels.items() if c.initial() is not MISSING),
            finish=tuple(dict.fromkeys(s for s, d in self.edges if d == END)),
        )
