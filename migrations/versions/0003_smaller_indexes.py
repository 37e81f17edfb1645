"""Smaller storage per thread: tenant indexes only over tenants' rows, per-thread lookups by
hash index, no unique index of events.event_id on PostgreSQL, and the metadata GIN index with
jsonb_path_ops.

Why: a paused thread paid for every index entry even when nothing can look it up. Rows
without a tenant are never searched by tenant (a tenant's lists filter ``tenant = :t``, which
implies ``tenant IS NOT NULL``, so the partial indexes still serve them). A thread's runs,
interrupts and events are a few rows found by equality on ``thread_id`` (and the ON DELETE
CASCADE): on PostgreSQL a hash index stores a 4-byte hash per row instead of the B-tree's key
(about a third of the bytes); SQLite gets a B-tree on ``thread_id``. ``event_id`` is a
random UUID that no query looks up; SQLite keeps its inline constraint (dropping it there
would rebuild the table, with ON DELETE CASCADE deliveries hanging off it). Metadata filters use
only ``@>`` containment, which the smaller ``jsonb_path_ops`` operator class supports.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TENANT_INDEXES = (
    (
        "ix_threads_tenant_status_created",
        "threads",
        ["tenant", "status", "created_at", "thread_id"],
    ),
    ("ix_interrupts_tenant_status_created", "interrupts", ["tenant", "status", "created_at", "id"]),
    ("ix_events_tenant_cursor", "events", ["tenant", "tx", "id"]),
)


#: (table, old B-tree, its columns, new index) of the per-thread lookups.
_THREAD_INDEXES = (
    ("runs", "ix_runs_thread", ["thread_id", "id"], "ix_runs_thread"),
    ("interrupts", "ix_interrupts_thread_status", ["thread_id", "status"], "ix_interrupts_thread"),
    ("events", "ix_events_thread_cursor", ["thread_id", "tx", "id"], "ix_events_thread"),
)


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    for table, old, _, new in _THREAD_INDEXES:
        op.drop_index(old, table_name=table)
        op.create_index(new, table, ["thread_id"], postgresql_using="hash")
    has_tenant = sa.text("tenant IS NOT NULL")
    for name, table, columns in _TENANT_INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns, postgresql_where=has_tenant, sqlite_where=has_tenant)
    if is_pg:
        op.drop_constraint("uq_events_event_id", "events", type_="unique")
        op.drop_index("ix_threads_metadata", table_name="threads")
        op.create_index(
            "ix_threads_metadata",
            "threads",
            ["metadata"],
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        )


def downgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    if is_pg:
        op.drop_index("ix_threads_metadata", table_name="threads")
        op.create_index("ix_threads_metadata", "threads", ["metadata"], postgresql_using="gin")
        op.create_unique_constraint("uq_events_event_id", "events", ["event_id"])
    for name, table, columns in _TENANT_INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
    for table, old, columns, new in _THREAD_INDEXES:
        op.drop_index(new, table_name=table)
        op.create_index(old, table, columns)
