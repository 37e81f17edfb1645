"""Webhook deliveries for operators: what was sent where, what failed and why, retry the dead."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from app.api.deps import LimitQuery, ServicesDep
from app.api.schemas import ProblemResponse
from app.services.deliveries import DeliveryItem, DeliveryStore

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

PROBLEM = {"model": ProblemResponse, "content": {"application/problem+json": {}}}
DeliveryStatusName = Literal["pending", "delivered", "dead"]


class DeliveryResponse(BaseModel):
    """One event to one URL: ``pending`` (retrying), ``delivered``, or ``dead`` (gave up)."""

    id: int
    event_id: str = Field(description="The event's unique id (X-Hitl-Event-Id).")
    event_type: str
    thread_id: str
    url: str
    status: DeliveryStatusName
    attempts: int
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt.")
    last_status: int | None = Field(description="The receiver's last HTTP status, if any.")
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_record(cls, item: DeliveryItem) -> DeliveryResponse:
        return cls(
            id=item.id,
            event_id=item.event_id,
            event_type=item.event_type,
            thread_id=item.thread_id,
            url=item.url,
            status=item.status,
            attempts=item.attempts,
            next_attempt_at=item.next_attempt_at,
            last_status=item.last_status,
            last_error=item.last_error,
            delivered_at=item.delivered_at,
            created_at=item.created_at,
        )


class DeliveryListResponse(BaseModel):
    deliveries: list[DeliveryResponse]
    next_cursor: str | None


@router.get("/deliveries", responses={422: PROBLEM})
async def list_webhook_deliveries(
    services: ServicesDep,
    status: DeliveryStatusName | None = None,
    thread_id: str | None = None,
    limit: LimitQuery = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,19}$")] = None,
) -> DeliveryListResponse:
    """Webhook deliveries, newest first; ``status=dead`` lists the ones that gave up.

    A tenant's key sees the deliveries of its own threads' events only."""
    items, next_id = await DeliveryStore(services.engine).list(
        status=status,
        thread_id=thread_id,
        tenant=services.tenant,
        limit=limit,
        before=int(cursor) if cursor is not None else None,
    )
    return DeliveryListResponse(
        deliveries=[DeliveryResponse.from_record(i) for i in items],
        next_cursor=str(next_id) if next_id is not None else None,
    )


@router.post(
    "/deliveries/{delivery_id}/retry", status_code=202, responses={404: PROBLEM, 409: PROBLEM}
)
async def retry_webhook_delivery(delivery_id: int, services: ServicesDep) -> Response:
    """Give a dead delivery a fresh round of attempts (after fixing the receiver)."""
    await DeliveryStore(services.engine).retry(delivery_id, tenant=services.tenant)
    return Response(status_code=202)
