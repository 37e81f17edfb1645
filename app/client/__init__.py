"""Python client of the hitl service: `HitlClient` (blocking) and `AsyncHitlClient` (asyncio).

    with HitlClient("http://127.0.0.1:8000", api_key="...") as hitl:
        thread = hitl.start("approval", wait=True)          # runs until the first question
        for item in hitl.iter_interrupts(graph="approval"):  # the inbox, newest first
            hitl.resume_interrupt(item.id, "Yes, I approve.")
        done = hitl.wait(thread.thread_id, timeout=30)

Problem responses raise typed errors (`NotFoundError`, `ConflictError`, `ValidationError`...,
all `HitlError`). Both clients drive the same I/O-free flows (`app.client.protocol`).
"""

from app.client.aio import AsyncHitlClient
from app.client.errors import (
    AuthError,
    ConflictError,
    HitlError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    TransportError,
    UnavailableError,
    ValidationError,
    WaitTimeoutError,
)
from app.client.models import (
    SETTLED,
    Checkpoint,
    Event,
    Graph,
    Interrupt,
    Page,
    PendingInterrupt,
    Thread,
)
from app.client.protocol import DEFAULT_BASE_URL, MISSING
from app.client.sync import HitlClient

__all__ = [
    "DEFAULT_BASE_URL",
    "MISSING",
    "SETTLED",
    "AsyncHitlClient",
    "AuthError",
    "Checkpoint",
    "ConflictError",
    "Event",
    "Graph",
    "HitlClient",
    "HitlError",
    "Interrupt",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PendingInterrupt",
    "ServerError",
    "Thread",
    "TransportError",
    "UnavailableError",
    "ValidationError",
    "WaitTimeoutError",
]
