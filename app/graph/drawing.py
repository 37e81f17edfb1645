"""The graph's shape for people: nodes, edges and a Mermaid drawing (LangGraph's layout)."""

from __future__ import annotations

from typing import Any, NamedTuple

from app.graph.spec import GraphSpec, NodeSpec
from app.graph.types import END, START

__all__ = ["DrawableGraph", "GraphEdge", "drawable"]


class GraphEdge(NamedTuple):
    """One edge; ``conditional`` for conditional edges and Command destinations."""

    source: str
    target: str
    conditional: bool = False
    data: str | None = None


class DrawableGraph:
    """Nodes (START and END included when connected) and edges of a compiled graph."""

    def __init__(self, nodes: list[str], edges: list[GraphEdge]) -> None:
        self.nodes = nodes
        self.edges = edges

    def to_json(self) -> dict[str, Any]:
        """``{"nodes": [...], "edges": [{"source", "target", "conditional", "data"}]}``."""
        return {"nodes": list(self.nodes), "edges": [e._asdict() for e in self.edges]}

    def draw_mermaid(self) -> str:
        """Return a Mermaid flowchart of the graph."""
        lines = [
            "---",
            "config:",
            "  flowchart:",
            "    curve: linear",
            "---",
            "graph TD;",
        ]
        for node in self.nodes:
            if node == START:
                lines.append(f"\t{node}([<p>{node}</p>]):::first")
            elif node == END:
                lines.append(f"\t{node}([<p>{node}</p>]):::last")
            else:
                lines.append(f"\t{node}({node})")
        for edge in self.edges:
            if not edge.conditional:
                lines.append(f"\t{edge.source} --> {edge.target};")
            elif edge.data:
                lines.append(f"\t{edge.source} -. &nbsp;{edge.data}&nbsp; .-> {edge.target};")
            else:
                lines.append(f"\t{edge.source} -.-> {edge.target};")
        lines += [
            "\tclassDef default fill:#f2f0ff,line-height:1.2",
            "\tclassDef first fill-opacity:0",
            "\tclassDef last fill:#bfb6fc",
        ]
        return "\n".join(lines) + "\n"


def _edges_of(spec: GraphSpec, node: NodeSpec, static: list[tuple[str, str]]) -> list[GraphEdge]:
    out = [GraphEdge(node.name, dst) for src, dst in static if src == node.name]
    everything = [*spec.nodes, END]
    for branch in node.branches:
        if branch.path_map is not None:
            for key, target in branch.path_map.items():
                label = None if str(key) == target else str(key)
                out.append(GraphEdge(node.name, target, True, label))
        else:
            for target in branch.ends or everything:
                out.append(GraphEdge(node.name, target, True))
    for target in node.destinations or ():
        out.append(GraphEdge(node.name, target, True))
    return out


def drawable(spec: GraphSpec) -> DrawableGraph:
    """Build the drawable form of a compiled graph."""
    builder_edges: list[tuple[str, str]] = []
    for node in (spec.start, *spec.nodes.values()):
        builder_edges.extend((node.name, dst) for dst in node.edges)
    ends = _ends(spec)
    for node in (spec.start, *spec.nodes.values()):
        if node.name in ends:
            builder_edges.append((node.name, END))
    edges: list[GraphEdge] = []
    for node in (spec.start, *spec.nodes.values()):
        edges.extend(_edges_of(spec, node, builder_edges))
    for join in spec.joins.values():
        edges.extend(GraphEdge(src, join.target) for src in sorted(join.sources))
    used = {e.source for e in edges} | {e.target for e in edges}
    nodes = [START, *spec.nodes] + ([END] if END in used else [])
    unique = list(dict.fromkeys(edges))
    return DrawableGraph(nodes, unique)


def _ends(spec: GraphSpec) -> set[str]:
    return set(spec.finish)
