"""LISTEN on PostgreSQL channels: one dedicated connection per process and database, shared.

The connection is asyncpg's own (a pooled connection cannot wait on LISTEN) and in autocommit.
Every `PgListener` of an event loop on the same database shares it: PostgreSQL signals every
listening backend of a database on every NOTIFY, whatever its channel, and each signalled
backend runs a transaction to read the queue. Three listening connections per process (the
worker, the settle watch, the webhook dispatcher) made nine such transactions per
human-in-the-loop cycle; one makes three.

A dropped connection is noticed by its termination callback or by a periodic ping and opened
again with backoff; every (re)connect also calls each listener back once with ``None``, because
notifications sent while disconnected are lost: the consumer should look at the table itself then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import URL

__all__ = ["PgListener", "asyncpg_dsn"]

logger = logging.getLogger(__name__)


def asyncpg_dsn(url: URL) -> str:
    """The engine's URL as a DSN asyncpg accepts (``postgresql://``, password kept)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class _Connection:
    """One LISTEN connection and the listeners attached to it, until it is lost or unused."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.users = 0
        #: Set when the connection ends or a ping fails: every listener on it reconnects.
        self.lost = asyncio.Event()
        #: One operation at a time on the connection (LISTEN, UNLISTEN, ping, close).
        self.busy = asyncio.Lock()
        conn.add_termination_listener(lambda _conn: self.lost.set())

    async def close(self) -> None:
        self.lost.set()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self.conn.close()
        if not self.conn.is_closed():
            self.conn.terminate()


class _SharedListen:
    """The current `_Connection` of one database in one event loop."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.current: _Connection | None = None
        self.opening = asyncio.Lock()

    async def attach(self, channel: str, callback: Callable[..., None]) -> _Connection:
        async with self.opening:
            shared = self.current
            if shared is None or shared.lost.is_set():
                conn: asyncpg.Connection = await asyncpg.connect(self.dsn, timeout=10)
                shared = self.current = _Connection(conn)
            shared.users += 1
        try:
            async with shared.busy:
                await shared.conn.add_listener(channel, callback)
        except BaseException:
            await self.detach(shared, channel, None)
            raise
        return shared

    async def detach(
        self, shared: _Connection, channel: str, callback: Callable[..., None] | None
    ) -> None:
        shared.users -= 1
        if shared.users == 0:
            if self.current is shared:
                self.current = None
            await shared.close()
        elif callback is not None and not shared.lost.is_set():
            with contextlib.suppress(Exception):
                async with shared.busy, asyncio.timeout(2):
                    await shared.conn.remove_listener(channel, callback)

    async def ping(self, shared: _Connection, seconds: float) -> None:
        """A silently dropped connection shows up here; all its listeners then reconnect."""
        try:
            async with shared.busy, asyncio.timeout(seconds):
                await shared.conn.execute("SELECT 1")
        except BaseException:
            shared.lost.set()
            raise


#: Per event loop, per DSN: connections cannot move between loops.
_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _SharedListen]] = (
    weakref.WeakKeyDictionary()
)


def _shared_listen(dsn: str) -> _SharedListen:
    per_loop = _shared.setdefault(asyncio.get_running_loop(), {})
    if dsn not in per_loop:
        per_loop[dsn] = _SharedListen(dsn)
    return per_loop[dsn]


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
        hub = _shared_listen(self.dsn)
        shared = await hub.attach(self.channel, self._notified)
        try:
            self.listening.set()
            self.on_notify(None)  # catch up on whatever happened while not listening
            while not shared.lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.ping_seconds):
                        await shared.lost.wait()
                if not shared.lost.is_set():
                    await hub.ping(shared, self.ping_seconds)
            logger.warning("LISTEN %s: connection lost; reconnecting", self.channel)
        finally:
            await asyncio.shield(hub.detach(shared, self.channel, self._notified))
