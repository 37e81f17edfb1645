"""Threads: start, read, list, answer, wait, cancel, delete, history.

The thread service comes scoped to the caller's tenant (`app.api.deps`): a tenant's key starts
threads of that tenant and gets 404 for any other thread.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.api.deps import (
    CallDep,
    CursorQuery,
    IdempotencyKeyHeader,
    LimitQuery,
    ThreadServiceDep,
    WaitQuery,
)
from app.api.schemas import (
    CheckpointResponse,
    CreateThreadRequest,
    HistoryResponse,
    ProblemResponse,
    ResumeThreadRequest,
    ThreadInterruptResponse,
    ThreadInterruptsResponse,
    ThreadListResponse,
    ThreadResponse,
    ThreadStatusName,
)
from app.services.interrupts import MISSING

router = APIRouter(prefix="/threads", tags=["threads"])

PROBLEM = {"model": ProblemResponse, "content": {"application/problem+json": {}}}
METADATA_PREFIX = "metadata."


@router.post(
    "",
    status_code=201,
    responses={
        200: {"model": ThreadResponse, "description": "The thread existed already."},
        404: PROBLEM,
        409: PROBLEM,
        422: PROBLEM,
    },
)
async def create_thread(
    body: CreateThreadRequest,
    response: Response,
    call: CallDep,
    idempotency_key: IdempotencyKeyHeader = None,
    wait: WaitQuery = False,
) -> ThreadResponse:
    """Create a thread of a hosted graph and queue its first run."""
    threads = call.services.threads
    with threads.run_here(wait) as here:
        outcome = await threads.start(
            body.graph,
            body.input,
            thread_id=body.thread_id,
            metadata=body.metadata,
            webhook=body.webhook,
            idempotency_key=idempotency_key,
            here=here,
        )
        if outcome.created:
            call.metrics.threads_started.labels(body.graph).inc()
        thread = outcome.value
        if wait and not outcome.replayed:
            thread = await threads.settle(thread.thread_id, here, look_first=not outcome.created)
    response.status_code = outcome.status_code
    response.headers["Location"] = f"/threads/{thread.thread_id}"
    return ThreadResponse.from_record(thread)


@router.get("", responses={422: PROBLEM})
async def list_threads(
    request: Request,
    threads: ThreadServiceDep,
    status: ThreadStatusName | None = None,
    graph: str | None = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> ThreadListResponse:
    """Threads, newest first. Filter by ``metadata.<key>=value`` too.

    ``status=interrupted`` is the humans' to-do list.
    """
    metadata = {
        key[len(METADATA_PREFIX) :]: value
        for key, value in request.query_params.items()
        if key.startswith(METADATA_PREFIX)
    }
    page = await threads.list(
        status=status, graph=graph, metadata=metadata, limit=limit, cursor=cursor
    )
    return ThreadListResponse(
        threads=[ThreadResponse.from_record(t) for t in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{thread_id}", responses={404: PROBLEM})
async def get_thread(thread_id: str, threads: ThreadServiceDep) -> ThreadResponse:
    """One thread: status, state values, next nodes, pending interrupts, error."""
    return ThreadResponse.from_record(await threads.get(thread_id))


@router.get("/{thread_id}/interrupts", responses={404: PROBLEM})
async def list_thread_interrupts(
    thread_id: str, threads: ThreadServiceDep
) -> ThreadInterruptsResponse:
    """The thread's pending interrupts (what it waits on)."""
    thread = await threads.get(thread_id)
    return ThreadInterruptsResponse(
        interrupts=[ThreadInterruptResponse.from_record(i) for i in thread.interrupts]
    )


@router.post(
    "/{thread_id}/resume",
    status_code=202,
    responses={404: PROBLEM, 409: PROBLEM, 422: PROBLEM},
)
async def resume_thread(
    thread_id: str,
    body: ResumeThreadRequest,
    response: Response,
    call: CallDep,
    idempotency_key: IdempotencyKeyHeader = None,
    wait: WaitQuery = False,
) -> ThreadResponse:
    """Answer the thread: ``{"value": v}`` (one pending) or ``{"values": {id: v, ...}}``.

    The answer is recorded with the key's name (``answered_by``), the time and the request id.
    """
    interrupts, threads = call.services.interrupts, call.services.threads
    with interrupts.run_here(wait) as here:
        with call.metrics.count_resume():
            outcome = await interrupts.resume_thread(
                thread_id,
                value=body.value if "value" in body.model_fields_set else MISSING,
                values=body.values if "values" in body.model_fields_set else None,
                answered_by=call.principal.audit_name(body.answered_by),
                request_id=call.request_id,
                idempotency_key=idempotency_key,
                here=here,
            )
        thread = outcome.value
        if wait and not outcome.replayed:
            thread = await threads.settle(thread_id, here, look_first=False)  # just queued
    response.status_code = outcome.status_code
    return ThreadResponse.from_record(thread)


@router.get("/{thread_id}/history", responses={404: PROBLEM, 422: PROBLEM})
async def get_thread_history(
    thread_id: str,
    threads: ThreadServiceDep,
    limit: LimitQuery = 20,
    cursor: CursorQuery = None,
) -> HistoryResponse:
    """The thread's checkpoints, newest first."""
    page = await threads.history(thread_id, limit=limit, cursor=cursor)
    return HistoryResponse(
        checkpoints=[CheckpointResponse.from_record(c) for c in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/{thread_id}/cancel", responses={404: PROBLEM, 409: PROBLEM})
async def cancel_thread(thread_id: str, threads: ThreadServiceDep) -> ThreadResponse:
    """Cancel the thread: pending questions are withdrawn, nothing more runs."""
    return ThreadResponse.from_record(await threads.cancel(thread_id))


@router.delete("/{thread_id}", status_code=204, responses={404: PROBLEM})
async def delete_thread(thread_id: str, threads: ThreadServiceDep) -> Response:
    """Delete the thread with its runs, interrupts and checkpoints."""
    await threads.delete(thread_id)
    return Response(status_code=204)
