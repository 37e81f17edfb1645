"""Records the run queue hands out: plain frozen values, no database handles inside."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

__all__ = ["ClaimedRun", "RunId", "RunStatus", "WorkerId"]

RunId = NewType("RunId", int)
WorkerId = NewType("WorkerId", str)


class RunStatus(StrEnum):
    """Life of a run row. Only ``queued`` and ``running`` are active (one per thread)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run this worker holds under a lease, with what executing it needs.

    Everything is read by the claim itself (one statement on PostgreSQL), so starting a run
    costs no further round trip: the thread's graph and stored input, whether the thread
    has a checkpoint yet, and the answers humans gave that no run has delivered yet.
    """

    id: RunId
    thread_id: str
    worker_id: WorkerId
    attempts: int
    graph: str
    tenant: str | None
    #: The thread's status after the claim: ``running``, or ``cancelled`` when the thread
    #: was cancelled while its run waited (the run is then finished without executing).
    thread_status: str
    #: The thread's original input as stored (serde-tagged JSON).
    input: Any
    #: Whether the thread has a root checkpoint, i.e. its first run got far enough to save.
    started: bool
    #: Interrupt id -> answer not yet delivered to the graph: as a human sent it, or the
    #: default applied when its deadline passed (status ``expired``).
    answers: Mapping[str, Any] = field(default_factory=dict)
    #: What the claimer's ``prefetch`` read in the claim's transaction (None without one).
    prefetched: Any = None
