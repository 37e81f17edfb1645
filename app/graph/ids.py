"""Identifiers: time-ordered checkpoint ids and deterministic task and interrupt ids.

Task ids hash (checkpoint id, namespace, step, node, path), so re-running a step from the same
checkpoint gives the same task ids, and therefore the same interrupt ids; a new checkpoint (a
new step, an update, a fork, another thread) gives new ones.
"""

from __future__ import annotations

import random
import threading
import time
from hashlib import blake2b

__all__ = ["checkpoint_id", "interrupt_id", "is_interrupt_id", "task_id"]

_lock = threading.Lock()
_last_ns = 0
_rand = random.Random()
_HEX = frozenset("0123456789abcdef")


def _time_of(cid: str) -> int:
    return int(cid[:8] + cid[9:13] + cid[14:18], 16)


def checkpoint_id(after: str | None = None) -> str:
    """Return a new checkpoint id that sorts after every id made before in this process.

    Args:
        after: the parent checkpoint's id; the new id sorts after it even if the clock of
            the machine that made it was ahead.
    """
    global _last_ns
    now = time.time_ns()
    with _lock:
        floor = _last_ns + 1
        if after is not None and len(after) == 36:
            floor = max(floor, _time_of(after) + 1)
        _last_ns = now = max(now, floor)
    t = f"{now:016x}"
    r = f"{_rand.getrandbits(64):016x}"
    return f"{t[:8]}-{t[8:12]}-{t[12:]}-{r[:4]}-{r[4:]}"


def task_id(checkpoint: str, ns: str, step: int, node: str, path: str) -> str:
    """Return the deterministic id of a task of ``checkpoint``'s step (UUID layout)."""
    h = blake2b(
        f"{checkpoint}\x00{ns}\x00{step}\x00{node}\x00{path}".encode(), digest_size=16
    ).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def interrupt_id(task_ns: str, index: int) -> str:
    """Return the id of the ``index``-th ``interrupt()`` call of the task ``task_ns``."""
    return blake2b(f"{task_ns}|{index}".encode(), digest_size=16).hexdigest()


def is_interrupt_id(key: object) -> bool:
    """Whether ``key`` looks like an interrupt id (32 lowercase hex characters)."""
    return isinstance(key, str) and len(key) == 32 and _HEX.issuperset(key)
