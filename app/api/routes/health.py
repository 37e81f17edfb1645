"""Liveness, readiness (the database answers) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import MetricsDep, ServicesDep
from app.api.schemas import HealthResponse, ProblemResponse, ReadinessResponse
from app.services.health import check_database

#: Liveness answers without an API key (probes have none).
public = APIRouter(tags=["health"])
router = APIRouter(tags=["health"])

PROBLEM = {"model": ProblemResponse, "content": {"application/problem+json": {}}}


@public.get("/healthz")
async def healthz() -> HealthResponse:
    """The process is alive (no database call)."""
    return HealthResponse()


@router.get("/readyz", responses={503: PROBLEM})
async def readyz(services: ServicesDep) -> ReadinessResponse:
    """The process can serve: its database answers."""
    await check_database(services.engine)
    return ReadinessResponse()


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text format."""
    return Response(metrics.render(), media_type=metrics.content_type)
