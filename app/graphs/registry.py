"""The graph registry: which compiled graphs this deployment hosts, by name.

Operators name graphs in ``HITL_GRAPHS`` as ``"name=module:attr,..."``; when unset, the examples
of this package are hosted (``approval``, the seed's graph, and ``review``, the realistic one).
An attribute may be a compiled graph, an uncompiled ``StateGraph`` builder (compiled here), or a
zero-argument factory returning either. Imports only ``app.graph`` (and ``app.errors``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import GraphNotFoundError

DEFAULT_GRAPHS = "approval=app.graphs.approval:graph,review=app.graphs.review:graph"


class GraphSpecError(ValueError):
    """``HITL_GRAPHS`` is malformed or names something that is not a graph."""


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """One ``name=module:attr`` entry of ``HITL_GRAPHS``."""

    name: str
    module: str
    attr: str

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attr}"


def parse_graphs(spec: str) -> list[GraphSpec]:
    """Parse ``"name=module:attr,..."``; an empty string means the examples."""
    text = spec.strip() or DEFAULT_GRAPHS
    specs: list[GraphSpec] = []
    seen: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, eq, target = item.partition("=")
        module, colon, attr = target.strip().partition(":")
        name, module, attr = name.strip(), module.strip(), attr.strip()
        if not (eq and colon and name and module and attr):
            raise GraphSpecError(f"HITL_GRAPHS entry {item!r} is not of the form name=module:attr")
        if name in seen:
            raise GraphSpecError(f"HITL_GRAPHS names the graph {name!r} twice")
        seen.add(name)
        specs.append(GraphSpec(name, module, attr))
    return specs


def _is_compiled(obj: Any) -> bool:
    return callable(getattr(obj, "with_checkpointer", None)) and callable(
        getattr(obj, "get_graph", None)
    )


def load_graph(spec: GraphSpec) -> Any:
    """Import ``module:attr`` and return a compiled graph (compiling a builder)."""
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise GraphSpecError(f"graph {spec.name!r}: cannot import {spec.module!r}: {exc}") from exc
    try:
        obj = getattr(module, spec.attr)
    except AttributeError as exc:
        raise GraphSpecError(f"graph {spec.name!r}: {spec.target} does not exist") from exc
    if not _is_compiled(obj) and not callable(getattr(obj, "compile", None)) and callable(obj):
        obj = obj()  # a factory
    if not _is_compiled(obj) and callable(getattr(obj, "compile", None)):
        obj = obj.compile()
    if not _is_compiled(obj):
        raise GraphSpecError(
            f"graph {spec.name!r}: {spec.target} is a {type(obj).__name__}, "
            "not a compiled graph or a StateGraph"
        )
    return obj


@dataclass(frozen=True, slots=True)
class GraphInfo:
    """What the API shows about a hosted graph."""

    name: str
    target: str
    nodes: list[str]
    edges: list[dict[str, Any]]
    mermaid: str


def _edge_dict(edge: Any) -> dict[str, Any]:
    if isinstance(edge, Mapping):
        return {str(k): v for k, v in edge.items()}
    if not hasattr(edge, "source"):  # a plain (source, target) pair
        return {"source": edge[0], "target": edge[1]}
    out: dict[str, Any] = {"source": edge.source, "target": edge.target}
    if getattr(edge, "conditional", False):
        out["conditional"] = True
    if getattr(edge, "data", None) is not None:
        out["label"] = edge.data
    return out


def _node_name(node: Any) -> str:
    if isinstance(node, str):
        return node
    return str(getattr(node, "id", None) or getattr(node, "name", node))


class GraphRegistry:
    """Compiled graphs by name; built once by a composition root, read by everyone else."""

    def __init__(self, graphs: Mapping[str, Any], targets: Mapping[str, str] | None = None) -> None:
        self._graphs = dict(graphs)
        self._targets = dict(targets or {})

    @classmethod
    def from_spec(cls, spec: str) -> GraphRegistry:
        """Load every graph named in a ``HITL_GRAPHS`` string (the examples when empty)."""
        specs = parse_graphs(spec)
        return cls({s.name: load_graph(s) for s in specs}, {s.name: s.target for s in specs})

    def __contains__(self, name: object) -> bool:
        return name in self._graphs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._graphs))

    def __len__(self) -> int:
        return len(self._graphs)

    def names(self) -> list[str]:
        return sorted(self._graphs)

    def get(self, name: str) -> Any:
        """The compiled graph named ``name``; `GraphNotFoundError` when none is."""
        try:
            return self._graphs[name]
        except KeyError:
            raise GraphNotFoundError(
                f"No graph is registered under the name {name!r}.",
                graph=name,
                available=self.names(),
            ) from None

    def describe(self, name: str) -> GraphInfo:
        """Nodes, edges and the Mermaid drawing of one graph."""
        drawing = self.get(name).get_graph()
        return GraphInfo(
            name=name,
            target=self._targets.get(name, ""),
            nodes=[_node_name(n) for n in _as_list(getattr(drawing, "nodes", []))],
            edges=[_edge_dict(e) for e in _as_list(getattr(drawing, "edges", []))],
            mermaid=drawing.draw_mermaid(),
        )


def _as_list(items: Any) -> list[Any]:
    """Nodes may come as a list or as a mapping keyed by name (its keys are the names)."""
    return list(items.keys()) if isinstance(items, Mapping) else list(items)
