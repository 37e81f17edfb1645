"""Smaller storage per thread: tenant indexes only over tenants' rows, no unique index of
events.event_id on PostgreSQL, and the metadata GIN index with jsonb_path_ops.

Why: a paused thread paid for every index entry even when nothing can look it up. Rows
without a tenant are never searched by tenant (a tenant's lists filter ``tenant = :t``, which
implies ``tenant IS NOT NULL``, so the partial indexes still serve them). ``event_id`` is a
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


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
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
