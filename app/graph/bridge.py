"""Sync calls over the async core: run a coroutine to completion from synchronous code."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.checkpoint.base import run_sync

__all__ = ["collect", "sync", "sync_caller"]

_T = TypeVar("_T")
_pool: ThreadPoolExecutor | None = None

#: True while a run was entered through a sync call (`invoke`, `stream`): nobody else shares its
#: event loop, so a lone sync node may run on the loop thread. Under `ainvoke`/`arun` the loop
#: belongs to an async application (the worker heartbeats on it), so sync nodes go to threads.
sync_caller: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "hitl_sync_caller", default=False
)


def sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion from sync code.

    On this thread's cached loop (`run_sync`); or, when called from inside a running loop (a
    sync node calling ``invoke``), on a helper thread with a loop that is closed afterwards and
    with this context (so the run knows its parent task).
    """
    global _pool
    token = sync_caller.set(True)
    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run_sync(coro)
        if _pool is None:
            _pool = ThreadPoolExecutor(thread_name_prefix="hitl-nested")
        ctx = contextvars.copy_context()
        return _pool.submit(ctx.run, asyncio.run, coro).result()
    finally:
        sync_caller.reset(token)


async def collect(agen: AsyncIterator[Any]) -> list[Any]:
    """Drain an async iterator into a list."""
    return [item async for item in agen]
