"""Dependencies of the routes, each published as an ``Annotated`` alias.

Everything comes from ``app.state.services``, built once by the lifespan (nothing at import time).
Every dependency is ``async def``: FastAPI runs a plain ``def`` in the thread pool, and those
hops were a tenth of the server's CPU per cycle.
A request made with a tenant's key gets the use cases scoped to that tenant (`Services.scoped`),
so every route that goes through `ServicesDep`, `ThreadServiceDep` or `InterruptServiceDep`
sees only that tenant's threads and interrupts, whether or not it knows about tenants.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from app.api.auth import Principal, require_api_key
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
    #: The tenant these use cases are limited to (None: every tenant, as operators see it).
    tenant: str | None = None

    def scoped(self, tenant: str | None) -> Services:
        """The same services, seeing and creating only ``tenant``'s threads and interrupts."""
        if tenant is None:
            return self
        return dataclasses.replace(
            self,
            threads=self.threads.scoped(tenant),
            interrupts=self.interrupts.scoped(tenant),
            tenant=tenant,
        )


PrincipalDep = Annotated[Principal, Depends(require_api_key)]


async def get_services(request: Request, principal: PrincipalDep) -> Services:
    """The use cases as the caller may use them (scoped to its tenant, if it has one)."""
    services: Services = request.app.state.services
    return services.scoped(principal.tenant)


async def get_threads(services: Annotated[Services, Depends(get_services)]) -> ThreadService:
    return services.threads


async def get_interrupts(services: Annotated[Services, Depends(get_services)]) -> InterruptService:
    return services.interrupts


async def get_registry(request: Request) -> GraphRegistry:
    services: Services = request.app.state.services
    return services.registry


async def get_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


@dataclass(frozen=True, slots=True)
class Call:
    """What the busiest routes need of a request, solved as one dependency.

    FastAPI solves every ``Depends`` of a route again, its own dependencies included, even when
    the value is cached for the request; the start and answer routes took eight such solves.
    """

    principal: Principal
    #: Scoped to the principal's tenant, as `get_services` gives them.
    services: Services
    metrics: ApiMetrics
    request_id: str | None


async def get_call(request: Request, principal: PrincipalDep) -> Call:
    services: Services = request.app.state.services
    return Call(
        principal=principal,
        services=services.scoped(principal.tenant),
        metrics=request.app.state.metrics,
        request_id=current_request_id(),
    )


ServicesDep = Annotated[Services, Depends(get_services)]
ThreadServiceDep = Annotated[ThreadService, Depends(get_threads)]
InterruptServiceDep = Annotated[InterruptService, Depends(get_interrupts)]
RegistryDep = Annotated[GraphRegistry, Depends(get_registry)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
CallDep = Annotated[Call, Depends(get_call)]

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
