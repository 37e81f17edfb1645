"""The inbox: interrupts across all threads, one interrupt, and answering one by its id.

The interrupt service comes scoped to the caller's tenant (`app.api.deps`): a tenant's key
lists only its own interrupts and gets 404 for any other.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response

from app.api.deps import (
    CallDep,
    CursorQuery,
    IdempotencyKeyHeader,
    InterruptServiceDep,
    LimitQuery,
    WaitQuery,
)
from app.api.schemas import (
    InterruptDetailResponse,
    InterruptListResponse,
    InterruptResponse,
    InterruptStatusName,
    ProblemResponse,
    ResumeInterruptRequest,
    ThreadResponse,
)

router = APIRouter(prefix="/interrupts", tags=["interrupts"])

PROBLEM = {"model": ProblemResponse, "content": {"application/problem+json": {}}}


@router.get("", responses={422: PROBLEM})
async def list_interrupts(
    interrupts: InterruptServiceDep,
    status: InterruptStatusName = "pending",
    graph: str | None = None,
    node: str | None = None,
    thread_id: str | None = None,
    older_than: datetime | None = None,
    expires_before: datetime | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> InterruptListResponse:
    """The inbox: one row per interrupt across all threads, newest first (pending by default)."""
    page = await interrupts.list(
        status=status,
        graph=graph,
        node=node,
        thread_id=thread_id,
        older_than=older_than,
        expires_before=expires_before,
        limit=limit,
        cursor=cursor,
    )
    return InterruptListResponse(
        interrupts=[InterruptResponse.from_record(i) for i in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{interrupt_id}", responses={404: PROBLEM})
async def get_interrupt(
    interrupt_id: str, interrupts: InterruptServiceDep
) -> InterruptDetailResponse:
    """One interrupt; once answered, also who answered, when, from which request, and what."""
    return InterruptDetailResponse.from_record(await interrupts.get(interrupt_id))


@router.post(
    "/{interrupt_id}/resume",
    status_code=202,
    responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
async def resume_interrupt(
    interrupt_id: str,
    body: ResumeInterruptRequest,
    response: Response,
    call: CallDep,
    idempotency_key: IdempotencyKeyHeader = None,
    wait: WaitQuery = False,
) -> ThreadResponse:
    """Answer one interrupt by its id; 202 with its thread, now queued."""
    interrupts, threads = call.services.interrupts, call.services.threads
    with interrupts.run_here(wait) as here:
        with call.metrics.count_resume():
            outcome = await interrupts.resume_interrupt(
                interrupt_id,
                body.value,
                answered_by=call.principal.audit_name(body.answered_by),
                request_id=call.request_id,
                idempotency_key=idempotency_key,
                here=here,
            )
        thread = outcome.value
        if wait and not outcome.replayed:
            thread = await threads.settle(thread.thread_id, here, look_first=False)
    response.status_code = outcome.status_code
    return ThreadResponse.from_record(thread)
