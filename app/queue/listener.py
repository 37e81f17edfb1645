"""LISTEN for queued runs: `PgListener` on the queue's channel.

Polling in the worker covers the gaps while the connection is down; every (re)connect fires the
callback once, because notifications sent while disconnected are lost.
"""

from __future__ import annotations

from collections.abc import Callable

from app.db.listen import PgListener, asyncpg_dsn
from app.queue.sql import NOTIFY_CHANNEL

__all__ = ["RunListener", "asyncpg_dsn"]


class RunListener(PgListener):
    """Calls ``on_notify()`` whenever a run is queued anywhere (and after each reconnect)."""

    def __init__(
        self,
        dsn: str,
        on_notify: Callable[[], None],
        *,
        ping_seconds: float = 15.0,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        super().__init__(
            dsn,
            NOTIFY_CHANNEL,
            lambda _payload: on_notify(),
            ping_seconds=ping_seconds,
            max_backoff_seconds=max_backoff_seconds,
        )
