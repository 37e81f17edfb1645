"""The database schema as SQLAlchemy 2 declarative models.

Alembic (``migrations/``) is the only schema authority; these classes must match it exactly
(``tests/migrations`` compares them with autogenerate). Timestamps are timezone-aware and set
by the database clock; JSON columns are JSONB on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = [
    "JSON",
    "JSON_OR_NULL",
    "Base",
    "CheckpointRow",
    "CheckpointWriteRow",
    "EventRow",
    "IdempotencyKeyRow",
    "InterruptRow",
    "RunRow",
    "ThreadRow",
    "UtcDateTime",
    "WebhookDeliveryRow",
    "utcnow",
]

#: JSON everywhere, JSONB (indexable, containment) on PostgreSQL.
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
#: JSON where Python None is SQL NULL (not JSON null).
JSON_OR_NULL = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
#: BIGINT ids; SQLite autoincrements only an INTEGER primary key.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC.

    PostgreSQL has ``timestamptz``; SQLite stores text without an offset, so values are
    normalised to UTC on the way in and tagged UTC on the way out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class utcnow(FunctionElement[datetime]):
    """The database clock: ``now()`` on PostgreSQL, UTC with milliseconds on SQLite."""

    type = UtcDateTime()
    inherit_cache = True


@compiles(utcnow)
def _utcnow_default(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "CURRENT_TIMESTAMP"


@compiles(utcnow, "postgresql")
def _utcnow_pg(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "now()"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(_element: utcnow, _compiler: SQLCompiler, **_kw: Any) -> str:
    # Sub-second precision keeps "newest first" orders stable for rows created in one second.
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now'))"


#: Indexes whose keys grow with time (created_at, the event cursor): rows are added at the
#: end of each key range, so the free tenth PostgreSQL leaves in each page (the default
#: fillfactor 90, for later inserts in between) is never used.
_APPEND_ONLY: dict[str, Any] = {"postgresql_with": {"fillfactor": 100}}

#: Partial-index predicate: only rows of a tenant are ever looked up by tenant.
_HAS_TENANT = sa.text("tenant IS NOT NULL")


def _created_at() -> Mapped[datetime]:
    return mapped_column(UtcDateTime(), nullable=False, server_default=utcnow())


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so constraint names are stable."""

    metadata = sa.MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class ThreadRow(Base):
    """A conversation with one hosted graph; ``values``/``next`` mirror its latest checkpoint."""

    __tablename__ = "threads"

    thread_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    tenant: Mapped[str | None] = mapped_column(sa.Text)
    graph: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False)
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    values: Mapped[Any] = mapped_column(JSON, nullable=True)
    next: Mapped[Any] = mapped_column(JSON, nullable=True)
    metadata_: Mapped[Any] = mapped_column(
        "metadata", JSON, nullable=False, server_default=sa.text("'{}'")
    )
    error: Mapped[Any] = mapped_column(JSON, nullable=True)
    webhook: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        # Keyset pagination, newest first: ORDER BY created_at DESC, thread_id DESC. Filtered
        # lists need indexes in that whole order: with a prepared statement's generic plan
        # (status = $1), PostgreSQL would otherwise prefer walking ix_threads_created and
        # filtering, which reads the whole index for a rare status or graph.
        sa.Index("ix_threads_status_created", "status", "created_at", "thread_id", **_APPEND_ONLY),
        sa.Index(
            "ix_threads_graph_status_created",
            "graph",
            "status",
            "created_at",
            "thread_id",
            **_APPEND_ONLY,
        ),
        # A tenant's lists (tenant = :t implies tenant IS NOT NULL); untenanted rows cost nothing.
        sa.Index(
            "ix_threads_tenant_status_created",
            "tenant",
            "status",
            "created_at",
            "thread_id",
            postgresql_where=_HAS_TENANT,
            sqlite_where=_HAS_TENANT,
            **_APPEND_ONLY,
        ),
        # The unfiltered list: ends at created_at; the few rows sharing a timestamp are sorted
        # after the scan (an incremental sort), and a cursor's created_at bounds the scan.
        sa.Index("ix_threads_created", "created_at", **_APPEND_ONLY),
        # Metadata filters use only JSONB containment (@>): jsonb_path_ops is enough and
        # smaller. SQLite scans.
        sa.Index(
            "ix_threads_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )


class RunRow(Base):
    """One execution request of a thread, claimed by a worker under a lease."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    thread_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("threads.thread_id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="queued")
    rerun: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, server_default=sa.false())
    worker_id: Mapped[str | None] = mapped_column(sa.Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        # At most one active run per thread, so at most one executes at any moment.
        sa.Index(
            "ux_runs_active_thread",
            "thread_id",
            unique=True,
            postgresql_where=sa.text("status IN ('queued', 'running')"),
            sqlite_where=sa.text("status IN ('queued', 'running')"),
        ),
        # Claim: the oldest queued run.
        sa.Index(
            "ix_runs_claim",
            "status",
            "id",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        ),
        # Reaper: running runs whose lease expired.
        sa.Index(
            "ix_runs_lease",
            "lease_expires_at",
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        ),
        # The ON DELETE CASCADE from threads (equality only: a hash index, ~1/3 of a B-tree's
        # bytes on PostgreSQL).
        sa.Index("ix_runs_thread", "thread_id", postgresql_using="hash"),
    )


class CheckpointRow(Base):
    """A serialized engine checkpoint. No FK to threads: the saver works without the service."""

    __tablename__ = "checkpoints"

    thread_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    ns: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(sa.Text)
    step: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    source: Mapped[str] = mapped_column(sa.Text, nullable=False)
    data: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    #: NULL: the engine's usual metadata (source and step as in the columns, no parents).
    metadata_: Mapped[Any] = mapped_column("metadata", JSON_OR_NULL, nullable=True)
    created_at: Mapped[str] = mapped_column(sa.Text, nullable=False)
    #: Pending writes made together with the checkpoint (see `app.checkpoint.sql_queries`).
    writes: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    #: The data ``writes`` was deflated against, when the checkpoint was put again since.
    writes_dict: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)


class CheckpointWriteRow(Base):
    """A pending write against a checkpoint; ``idx`` orders writes by first write."""

    __tablename__ = "checkpoint_writes"

    thread_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    ns: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    task_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    channel: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    idx: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    value: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)


class InterruptRow(Base):
    """A question a paused thread asks a human: the inbox."""

    __tablename__ = "interrupts"

    id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    thread_id: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("threads.thread_id", ondelete="CASCADE"), nullable=False
    )
    tenant: Mapped[str | None] = mapped_column(sa.Text)
    graph: Mapped[str] = mapped_column(sa.Text, nullable=False)
    node: Mapped[str] = mapped_column(sa.Text, nullable=False)
    ns: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="")
    checkpoint_id: Mapped[str] = mapped_column(sa.Text, nullable=False)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    schema: Mapped[Any] = mapped_column(JSON, nullable=True)
    has_default: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, server_default=sa.false())
    default: Mapped[Any] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="pending")
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answer: Mapped[Any] = mapped_column(JSON, nullable=True)
    answered_by: Mapped[str | None] = mapped_column(sa.Text)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    request_id: Mapped[str | None] = mapped_column(sa.Text)
    consumed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        # The inbox, newest first (ORDER BY created_at DESC, id DESC). Every list filters on
        # status, so no index of all rows competes with these: they end at created_at, and
        # the ids of rows sharing a timestamp are sorted after the scan (incremental sort).
        sa.Index("ix_interrupts_status_created", "status", "created_at", **_APPEND_ONLY),
        # A thread's questions (a few per thread; equality only: a hash index on PostgreSQL).
        sa.Index("ix_interrupts_thread", "thread_id", postgresql_using="hash"),
        sa.Index(
            "ix_interrupts_graph_status_created", "graph", "status", "created_at", **_APPEND_ONLY
        ),
        sa.Index(
            "ix_interrupts_tenant_status_created",
            "tenant",
            "status",
            "created_at",
            postgresql_where=_HAS_TENANT,
            sqlite_where=_HAS_TENANT,
            **_APPEND_ONLY,
        ),
        # Deadline sweeper: pending questions with a timeout.
        sa.Index(
            "ix_interrupts_expires",
            "expires_at",
            postgresql_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"),
            sqlite_where=sa.text("status = 'pending' AND expires_at IS NOT NULL"),
        ),
    )


class IdempotencyKeyRow(Base):
    """The stored response of a request sent with an Idempotency-Key."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    response: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = _created_at()


class EventRow(Base):
    """Something a human or a program may want to hear about; the outbox of webhooks and SSE.

    Written in the same transaction as the change it reports. ``tx`` is the writing transaction's
    id on PostgreSQL (0 on SQLite): readers order by ``(tx, id)`` and read only transactions older
    than every one still in flight, so a later commit never lands behind a reader's cursor.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(sa.Text, nullable=False)
    type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    thread_id: Mapped[str] = mapped_column(sa.Text, nullable=False)
    tenant: Mapped[str | None] = mapped_column(sa.Text)
    graph: Mapped[str] = mapped_column(sa.Text, nullable=False)
    payload: Mapped[Any] = mapped_column(JSON, nullable=False)
    tx: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, server_default="0")
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        # event_id is a random UUID that receivers deduplicate on; nothing looks it up, so
        # PostgreSQL keeps no index of it (a paused thread's event: ~65 bytes less). SQLite
        # keeps the inline constraint: dropping it there means rebuilding the table.
        sa.UniqueConstraint("event_id", name="uq_events_event_id").ddl_if(dialect="sqlite"),
        # Streams: one thread's events, all events (optionally one tenant's), in cursor order.
        # One thread's events: a few, sorted after the lookup (a hash index on PostgreSQL).
        sa.Index("ix_events_thread", "thread_id", postgresql_using="hash"),
        # All events in cursor order: ids of one transaction sorted after the scan (an
        # incremental sort); no other index of all events competes with it.
        sa.Index("ix_events_cursor", "tx", **_APPEND_ONLY),
        sa.Index(
            "ix_events_tenant_cursor",
            "tenant",
            "tx",
            "id",
            postgresql_where=_HAS_TENANT,
            sqlite_where=_HAS_TENANT,
        ),
        {"sqlite_autoincrement": True},
    )


class WebhookDeliveryRow(Base):
    """One event to one webhook URL, retried with backoff until delivered or dead."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    )
    url: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = _created_at()
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_status: Mapped[int | None] = mapped_column(sa.Integer)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        # One delivery per event and target URL.
        sa.UniqueConstraint("event_id", "url", name="uq_webhook_deliveries_event_url"),
        # The dispatcher: pending deliveries that are due.
        sa.Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        ),
        # GET /webhooks/deliveries?status=dead, newest first.
        sa.Index("ix_webhook_deliveries_status", "status", "id"),
    )


class EventListenerRow(Base):
    """A process that wants ``NOTIFY hitl_events`` for every event, while ``expires_at`` lies ahead.

    Writers of events send the notification only when the events created webhook deliveries or
    some listener here is live: with no ``?wait=true`` waiting on a queued run and no event
    stream open, the notification (a database-wide lock held through the commit, a wake-up of
    every listening connection) would go unheard. A process refreshes its row from the database
    clock while it listens and deletes it when it stops (`app.services.event_interest`).
    """

    __tablename__ = "event_listeners"

    listener_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    purpose: Mapped[str] = mapped_column(sa.Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
