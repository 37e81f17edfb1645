"""Dependencies of the routes, each published as an ``Annotated`` alias.

Everything comes from ``app.state.services``, built once by the lifespan (nothing at import time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from app.api.context import current_request_id
from app.api.metrics import ApiMetrics
from app.config import Settings
from app.graphs.registry import GraphRegistry
from app.services.interrupts import InterruptService
from app.services.threads import ThreadService


@dataclass(slots=True)
class Services:
    """What the lifespan builds and the routes use."""

    settings: Settings
    engine: Any
    registry: GraphRegistry
    threads: ThreadService
    interrupts: InterruptService
    worker: Any = None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_threads(request: Request) -> ThreadService:
    return get_services(request).threads


def get_interrupts(request: Request) -> InterruptService:
    return get_services(request).interrupts


def get_registry(request: Request) -> GraphRegistry:
    return get_services(request).registry


def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def get_request_id() -> str | None:
    return current_request_id()


ServicesDep = Annotated[Services, Depends(get_services)]
ThreadServiceDep = Annotated[ThreadService, Depends(get_threads)]
InterruptServiceDep = Annotated[InterruptService, Depends(get_interrupts)]
RegistryDep = Annotated[GraphRegistry, Depends(get_registry)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
RequestIdDep = Annotated[str | None, Depends(get_request_id)]

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same key and body: the first response again, nothing done twice.",
    ),
]
WaitQuery = Annotated[
    bool,
    Query(description="Answer once the run has settled (bounded by HITL_WAIT_MAX_SECONDS)."),
]
LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size (at most 500).")]
CursorQuery = Annotated[
    str | None, Query(max_length=512, description="next_cursor of the previous page.")
]
