"""Webhook delivery: POST each recorded event to its URLs, signed, at least once.

A side task of every worker (`WebhookDispatcher.run`). It claims due deliveries from the outbox
(`app.services.deliveries`), POSTs the event's JSON with httpx, and records the outcome: a 2xx is
delivered; anything else (a status, a refused connection, a timeout) is retried after an
exponential backoff with jitter, and after ``max_attempts`` the delivery is ``dead`` (listed by
``GET /webhooks/deliveries``, retried by an operator). Receivers deduplicate on ``X-Hitl-Event-Id``.

Signature: ``X-Hitl-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw request body with
HITL_WEBHOOK_SECRET (`verify_signature` is the receiver's side). Wake-ups: NOTIFY on PostgreSQL,
polling everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.listen import PgListener
from app.errors import UnavailableError
from app.queue.listener import asyncpg_dsn
from app.services.deliveries import Attempt, DeliveryStore, DueDelivery
from app.services.events import EVENTS_CHANNEL, notify_has_deliveries

__all__ = [
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookDispatcher",
    "backoff_seconds",
    "sign",
    "verify_signature",
]

logger = logging.getLogger(__name__)

EVENT_ID_HEADER = "X-Hitl-Event-Id"
EVENT_HEADER = "X-Hitl-Event"
SIGNATURE_HEADER = "X-Hitl-Signature"
TIMESTAMP_HEADER = "X-Hitl-Timestamp"
ATTEMPT_HEADER = "X-Hitl-Delivery-Attempt"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` (constant-time comparison)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def backoff_seconds(
    attempts: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Delay before the next attempt after ``attempts`` failures: exponential, capped, with
    "equal jitter" (between half and all of it), so receivers coming back are not stampeded."""
    delay = min(cap, base * 2.0 ** min(attempts - 1, 62))
    return float(delay / 2 + rng() * delay / 2)


def _host(url: str) -> str:
    """For logs: webhook URLs often carry tokens in their path or query."""
    return urlsplit(url).netloc or "?"


class WebhookDispatcher:
    """Delivers pending webhook deliveries of ``engine``'s database until cancelled."""

    def __init__(
        self,
        engine: AsyncEngine,
        secret: str | None,
        *,
        max_attempts: int = 8,
        base_delay: float = 2.0,
        max_delay: float = 3600.0,
        timeout: float = 10.0,
        concurrency: int = 8,
        poll_seconds: float = 1.0,
        batch_delay: float = 0.1,
        listen: bool = True,
    ) -> None:
        if max_attempts < 1 or concurrency < 1:
            raise ValueError("max_attempts and concurrency must be at least 1")
        self.store = DeliveryStore(engine)
        self.engine = engine
        self.secret = secret
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.concurrency = concurrency
        self.batch_size = 2 * concurrency
        self.poll_seconds = poll_seconds
        self.batch_delay = batch_delay
        # An attempt waits for a sending slot at most one round, then takes at most ``timeout``:
        # the claim outlives both, so no one else sends it meanwhile.
        self.lease_seconds = 2 * timeout + 5.0
        self._sending = asyncio.Semaphore(concurrency)
        self.listen = listen and engine.dialect.name == "postgresql"
        self._wake = asyncio.Event()
        self._warned_unsigned = False

    def wake(self) -> None:
        """Look for due deliveries now (thread-unsafe; call from the dispatcher's loop)."""
        self._wake.set()

    def _notified(self, payload: str | None) -> None:
        if notify_has_deliveries(payload):  # events without webhooks need no look
            self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; survives database outages (logs, backs off, goes on)."""
        listener_task: asyncio.Task[None] | None = None
        if self.listen:
            listener = PgListener(asyncpg_dsn(self.engine.url), EVENTS_CHANNEL, self._notified)
            listener_task = asyncio.create_task(listener.run(), name="hitl-webhook-listener")
        failures = 0
        try:
            async with self._client() as client:
                while True:
                    self._wake.clear()
                    try:
                        sent = await self.run_once(client)
                    except UnavailableError as exc:
                        failures += 1
                        delay = min(0.25 * 2**failures, 10.0)
                        logger.warning("webhooks: database unavailable (%s); retrying", exc)
                        await _wait(self._wake, delay)
                        continue
                    failures = 0
                    if sent < self.batch_size:  # a full batch: more may be due right away
                        await _wait(self._wake, self.poll_seconds)
                        # Woken by an event: let a few more arrive, then claim them together
                        # (fewer transactions while the service is busy).
                        await asyncio.sleep(self.batch_delay)
        finally:
            if listener_task is not None:
                listener_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener_task

    def _client(self) -> httpx.AsyncBaseTransport:
        """httpx's transport, used directly: a webhook needs none of the client's layers
        (auth, cookies, redirects, base URLs), and skipping them saves a fifth of the CPU."""
        # As many connections as sends at once, kept alive: no handshake per event, and a
        # small pool is cheap to scan on every request.
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        return httpx.AsyncHTTPTransport(limits=limits)

    async def run_once(self, client: httpx.AsyncBaseTransport | None = None) -> int:
        """Claim one batch of due deliveries, attempt them (``concurrency`` at a time), record
        the outcomes in one transaction; returns how many were attempted."""
        due = await self.store.claim_due(limit=self.batch_size, lease_seconds=self.lease_seconds)
        if not due:
            return 0
        if client is None:
            async with self._client() as own:
                attempts = await asyncio.gather(*(self._attempt(own, d) for d in due))
        else:
            attempts = await asyncio.gather(*(self._attempt(client, d) for d in due))
        try:
            await self.store.record(attempts)
        except UnavailableError as exc:  # the claims' lease expires; the attempts are redone
            logger.warning("webhooks: could not record %d attempts (%s)", len(attempts), exc)
        return len(due)

    async def _attempt(self, client: httpx.AsyncBaseTransport, delivery: DueDelivery) -> Attempt:
        async with self._sending:
            status, error = await self._post(client, delivery)
        if error is None:
            logger.debug("webhook %s delivered to %s", delivery.id, _host(delivery.url))
            return Attempt(delivery, ok=True, status_code=status)
        attempts = delivery.attempts + 1
        retry_in = (
            None
            if attempts >= self.max_attempts
            else backoff_seconds(attempts, base=self.base_delay, cap=self.max_delay)
        )
        logger.log(
            logging.WARNING if retry_in is None else logging.INFO,
            "webhook %s (%s) to %s failed, attempt %d/%d: %s%s",
            delivery.id,
            delivery.event.type,
            _host(delivery.url),
            attempts,
            self.max_attempts,
            error,
            "; giving up (dead)" if retry_in is None else f"; retry in {retry_in:.1f}s",
        )
        return Attempt(delivery, ok=False, status_code=status, error=error, retry_in=retry_in)

    async def _post(
        self, client: httpx.AsyncBaseTransport, delivery: DueDelivery
    ) -> tuple[int | None, str | None]:
        """(status, error): error is None exactly when the receiver answered 2xx."""
        event = delivery.event
        body = event.body()
        headers = {
            "User-Agent": "hitl-webhooks/1",
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.event_id,
            EVENT_HEADER: event.type,
            TIMESTAMP_HEADER: str(int(time.time())),
            ATTEMPT_HEADER: str(delivery.attempts + 1),
        }
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        elif not self._warned_unsigned:
            self._warned_unsigned = True
            logger.warning("HITL_WEBHOOK_SECRET is not set: webhooks are sent unsigned")
        try:
            async with asyncio.timeout(self.timeout):
                request = httpx.Request("POST", delivery.url, content=body, headers=headers)
                request.extensions["timeout"] = httpx.Timeout(self.timeout).as_dict()
                response = await client.handle_async_request(request)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError:
            return None, f"timed out after {self.timeout:g}s"
        except Exception as exc:  # refused, reset, bad URL...: this attempt failed, not the batch
            return None, f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return response.status_code, None
        text = content[:200].decode(errors="replace")
        return response.status_code, f"HTTP {response.status_code}: {text}"


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
