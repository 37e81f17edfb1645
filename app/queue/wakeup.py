"""In-process wake-ups: an enqueue on SQLite wakes the workers of this process at once.

PostgreSQL wakes workers everywhere with NOTIFY. SQLite has no NOTIFY, but its workers live
in the process that enqueues (``hitl serve``'s embedded worker), so a callback is enough.
Waking before the enqueuing transaction commits is safe: the claim takes SQLite's write lock,
which the enqueuing transaction holds until it commits, so the claim sees the new run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["subscribe", "wake_local_workers"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_callbacks: set[Callable[[], None]] = set()


def subscribe(callback: Callable[[], None]) -> Callable[[], None]:
    """Call ``callback`` (thread-safe, non-blocking) on every local enqueue; returns unsubscribe."""
    with _lock:
        _callbacks.add(callback)

    def unsubscribe() -> None:
        with _lock:
            _callbacks.discard(callback)

    return unsubscribe


def wake_local_workers() -> None:
    """Tell this process's workers that a run may be waiting."""
    with _lock:
        callbacks = list(_callbacks)
    for callback in callbacks:
        try:
            callback()
        except Exception:  # a closed loop of a stopped worker must not break an enqueue
            logger.debug("wake-up callback failed", exc_info=True)
