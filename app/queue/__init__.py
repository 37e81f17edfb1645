"""The run queue: runs are rows claimed under a lease (see `RunQueue`)."""

from app.queue.queue import DEFAULT_MAX_ATTEMPTS, ReapedRun, RunQueue
from app.queue.records import ClaimedRun, RunId, RunStatus, WorkerId
from app.queue.sql import NOTIFY_CHANNEL

__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "NOTIFY_CHANNEL",
    "ClaimedRun",
    "ReapedRun",
    "RunId",
    "RunQueue",
    "RunStatus",
    "WorkerId",
]
