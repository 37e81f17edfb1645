"""Webhook deliveries: claim the due ones under a lease, record each attempt, list them.

A delivery is claimed by moving its ``next_attempt_at`` past the time the attempt can take (the
lease), in the same statement that selects it (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, one
``BEGIN IMMEDIATE`` on SQLite): two dispatchers never send the same attempt at once, and an
attempt whose dispatcher died is simply due again when the lease runs out. Results are fenced on
the attempt number, so a late result of a superseded attempt changes nothing; a batch's results
are recorded in one transaction. All times come from the database clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import begin_immediate
from app.db.errors import wrap_db_errors
from app.db.tables import EventRow, WebhookDeliveryRow, utcnow
from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.queue.sql import seconds_from_now
from app.services.event_feed import questions_of, stored_event
from app.services.events import StoredEvent, stored_event_id

__all__ = ["Attempt", "DeliveryItem", "DeliveryStatus", "DeliveryStore", "DueDelivery"]

D = WebhookDeliveryRow
E = EventRow


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed attempt: send ``event`` to ``url``; ``attempts`` were made before this one."""

    id: int
    url: str
    attempts: int
    event: StoredEvent


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one attempt went: delivered (``ok``), or failed and retried in ``retry_in`` seconds
    (None: given up, dead)."""

    delivery: DueDelivery
    ok: bool
    status_code: int | None = None
    error: str | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class DeliveryItem:
    """A delivery as operators see it (``GET /webhooks/deliveries``)."""

    id: int
    event_id: str
    event_type: str
    thread_id: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


#: The due pending deliveries, oldest due first; rows another dispatcher holds are skipped.
_DUE = (
    sa.select(D.id)
    .where(D.status == DeliveryStatus.PENDING.value, D.next_attempt_at <= utcnow())
    .order_by(D.next_attempt_at, D.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(skip_locked=True)
)

_LEASE = seconds_from_now(sa.bindparam("lease", type_=sa.Float))
_CLAIMABLE = (D.id.in_(_DUE.scalar_subquery()), D.status == DeliveryStatus.PENDING.value)
_EVENT_COLUMNS = (
    E.id,
    E.tx,
    E.event_id,
    E.type,
    E.thread_id,
    E.tenant,
    E.graph,
    E.payload,
    E.created_at,
)

#: Claim (PostgreSQL, one statement): push the due rows' next attempt past the lease (they are
#: ours until then) and return them with their events (UPDATE ... FROM events).
PG_CLAIM = (
    sa.update(D)
    .where(*_CLAIMABLE, E.id == D.event_id)
    .values(next_attempt_at=_LEASE)
    .returning(D.id.label("delivery_id"), D.url, D.attempts, *_EVENT_COLUMNS)
)

#: Claim (SQLite: RETURNING sees only the updated table), then read the events.
SQLITE_CLAIM = (
    sa.update(D)
    .where(*_CLAIMABLE)
    .values(next_attempt_at=_LEASE)
    .returning(D.id.label("delivery_id"), D.url, D.attempts, D.event_id)
)
SQLITE_EVENTS = sa.select(*_EVENT_COLUMNS).where(E.id.in_(sa.bindparam("ids", expanding=True)))

#: A 2xx arrived: delivered (even if a superseded attempt recorded a failure meanwhile).
DELIVERED = (
    sa.update(D)
    .where(D.id == sa.bindparam("b_id"), D.status != DeliveryStatus.DELIVERED.value)
    .values(
        status=DeliveryStatus.DELIVERED.value,
        attempts=D.attempts + 1,
        last_status=sa.bindparam("b_status"),
        last_error=None,
        delivered_at=utcnow(),
    )
)

#: An attempt failed: try again after the backoff, or give up (dead). Fenced on the attempt.
FAILED = (
    sa.update(D)
    .where(
        D.id == sa.bindparam("b_id"),
        D.status == DeliveryStatus.PENDING.value,
        D.attempts == sa.bindparam("b_attempts"),
    )
    .values(
        status=sa.bindparam("b_new_status"),
        attempts=D.attempts + 1,
        last_status=sa.bindparam("b_status"),
        last_error=sa.bindparam("b_error"),
        next_attempt_at=seconds_from_now(sa.bindparam("b_retry_in", type_=sa.Float)),
    )
)

#: Give a dead delivery another round of attempts (an operator fixed the receiver).
RETRY = (
    sa.update(D)
    .where(D.id == sa.bindparam("b_id"), D.status == DeliveryStatus.DEAD.value)
    .values(status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=utcnow())
    .returning(D.id)
)


class DeliveryStore:
    """The webhook_deliveries table of one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim_due(self, *, limit: int, lease_seconds: float) -> list[DueDelivery]:
        """Claim up to ``limit`` due deliveries for ``lease_seconds``; one transaction."""
        params = {"limit": limit, "lease": float(lease_seconds)}
        with wrap_db_errors():
            async with begin_immediate(self.engine) as conn:
                if conn.dialect.name == "postgresql":
                    rows = (await conn.execute(PG_CLAIM, params)).all()
                    questions = await questions_of(conn, rows)
                    claimed = [(r, stored_event(r, questions)) for r in rows]
                else:
                    rows = (await conn.execute(SQLITE_CLAIM, params)).all()
                    ids = sorted({int(r.event_id) for r in rows})
                    found = (await conn.execute(SQLITE_EVENTS, {"ids": ids})).all() if ids else []
                    questions = await questions_of(conn, found)
                    by_id = {int(e.id): stored_event(e, questions) for e in found}
                    claimed = [(r, by_id[int(r.event_id)]) for r in rows]
        return [
            DueDelivery(int(r.delivery_id), r.url, int(r.attempts), event)
            for r, event in sorted(claimed, key=lambda c: int(c[0].delivery_id))
        ]

    async def record(self, attempts: Sequence[Attempt]) -> None:
        """Record the outcomes of a batch of attempts in one transaction."""
        delivered = [{"b_id": a.delivery.id, "b_status": a.status_code} for a in attempts if a.ok]
        failed = [
            {
                "b_id": a.delivery.id,
                "b_attempts": a.delivery.attempts,
                "b_new_status": (
                    DeliveryStatus.DEAD.value
                    if a.retry_in is None
                    else DeliveryStatus.PENDING.value
                ),
                "b_status": a.status_code,
                "b_error": (a.error or "")[:2000],
                "b_retry_in": 0.0 if a.retry_in is None else float(a.retry_in),
            }
            for a in attempts
            if not a.ok
        ]
        if not attempts:
            return
        with wrap_db_errors():
            async with self.engine.begin() as conn:
                if delivered:
                    await conn.execute(DELIVERED, delivered)
                if failed:
                    await conn.execute(FAILED, failed)

    async def retry(self, delivery_id: int, *, tenant: str | None = None) -> None:
        """Make a dead delivery pending again, with a fresh round of attempts.

        ``tenant``: the caller's tenant, which may retry its own threads' deliveries only.

        Raises:
            NotFoundError: no such delivery (for this tenant).
            ConflictError: the delivery is not dead (pending or delivered).
        """
        visible = sa.select(D.status).where(D.id == delivery_id)
        if tenant is not None:
            visible = visible.join(E, E.id == D.event_id).where(E.tenant == tenant)
        with wrap_db_errors():
            async with begin_immediate(self.engine) as conn:
                status = (await conn.execute(visible)).scalar()
                if status == DeliveryStatus.DEAD.value:
                    await conn.execute(RETRY, {"b_id": delivery_id})
                    return
        if status is None:
            raise NotFoundError(
                f"Webhook delivery {delivery_id} does not exist.", delivery_id=delivery_id
            )
        raise ConflictError(
            f"Webhook delivery {delivery_id} is {status}; only a dead one can be retried.",
            delivery_id=delivery_id,
            status=status,
        )

    async def list(
        self,
        *,
        status: str | None = None,
        thread_id: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> tuple[list[DeliveryItem], int | None]:
        """Deliveries newest first; returns the page and the cursor of the next one (an id)."""
        if status is not None and status not in {s.value for s in DeliveryStatus}:
            raise InvalidInputError(f"Unknown delivery status {status!r}.", status=status)
        conditions: list[sa.ColumnElement[bool]] = []
        if status is not None:
            conditions.append(D.status == status)
        if thread_id is not None:
            conditions.append(E.thread_id == thread_id)
        if tenant is not None:
            conditions.append(E.tenant == tenant)
        if before is not None:
            conditions.append(D.id < before)
        query = (
            sa.select(
                D.id,
                E.event_id,
                E.type,
                E.payload,
                E.thread_id,
                D.url,
                D.status,
                D.attempts,
                D.next_attempt_at,
                D.last_status,
                D.last_error,
                D.delivered_at,
                D.created_at,
            )
            .join(E, E.id == D.event_id)
            .where(*conditions)
            .order_by(D.id.desc())
            .limit(limit + 1)
        )
        with wrap_db_errors():
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query)).all()
        items = [
            DeliveryItem(
                id=int(r.id),
                event_id=stored_event_id(r.type, r.event_id, r.payload),
                event_type=r.type,
                thread_id=r.thread_id,
                url=r.url,
                status=r.status,
                attempts=int(r.attempts),
                next_attempt_at=r.next_attempt_at if r.status == "pending" else None,
                last_status=r.last_status,
                last_error=r.last_error,
                delivered_at=r.delivered_at,
                created_at=r.created_at,
            )
            for r in rows[:limit]
        ]
        return items, (items[-1].id if len(rows) > limit else None)
