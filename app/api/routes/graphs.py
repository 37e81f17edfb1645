"""The hosted graphs: names, nodes, edges and Mermaid drawings."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import RegistryDep
from app.api.schemas import GraphListResponse, GraphResponse, ProblemResponse

router = APIRouter(prefix="/graphs", tags=["graphs"])

PROBLEM = {"model": ProblemResponse, "content": {"application/problem+json": {}}}


@router.get("")
async def list_graphs(registry: RegistryDep) -> GraphListResponse:
    """Every registered graph."""
    return GraphListResponse(
        graphs=[GraphResponse.from_info(registry.describe(name)) for name in registry.names()]
    )


@router.get("/{name}", responses={404: PROBLEM})
async def get_graph(name: str, registry: RegistryDep) -> GraphResponse:
    """One graph: its nodes, edges and a Mermaid drawing."""
    return GraphResponse.from_info(registry.describe(name))
