"""LISTEN on one PostgreSQL channel, on a dedicated connection that reconnects forever.

The connection is asyncpg's own (a pooled connection cannot wait on LISTEN) and in autocommit.
A dropped connection is noticed by its termination callback or by a periodic ping and opened
again with backoff; every (re)connect also calls back once with ``None``, because notifications
sent while disconnected are lost: the consumer should look at the table itself then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

__all__ = ["PgListener", "asyncpg_dsn"]

logger = logging.getLogger(__name__)


def asyncpg_dsn(url: URL) -> str:
    """The engine's URL as a DSN asyncpg accepts (``postgresql://``, password kept)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    """Calls ``on_notify(payload)`` for each NOTIFY on ``channel`` (``None`` after a connect)."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[str | None], None],
        *,
        ping_seconds: float = 15.0,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.channel = channel
        self.on_notify = on_notify
        self.ping_seconds = ping_seconds
        self.max_backoff_seconds = max_backoff_seconds
        #: Set while LISTEN is active.
        self.listening = asyncio.Event()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_notify(payload)

    async def run(self) -> None:
        """Listen until cancelled."""
        backoff = 0.2
        while True:
            try:
                await self._listen_once()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any connection problem: log, wait, reconnect
                logger.warning(
                    "LISTEN %s failed (%s: %s); retrying", self.channel, type(exc).__name__, exc
                )
            finally:
                self.listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_seconds)

    async def _listen_once(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn, timeout=10)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self.channel, self._notified)
            self.listening.set()
            self.on_notify(None)  # catch up on whatever happened while not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.ping_seconds):
                        await lost.wait()
                if not lost.is_set():  # a silently dropped connection shows up here
                    async with asyncio.timeout(self.ping_seconds):
                        await conn.execute("SELECT 1")
            logger.warning("LISTEN %s: connection lost; reconnecting", self.channel)
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await conn.close()
            if not conn.is_closed():
                conn.terminate()
