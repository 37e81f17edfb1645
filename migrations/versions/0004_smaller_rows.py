"""Smaller storage per paused thread: list indexes without the tie-breaking id; a checkpoint
row holds the pending writes made with it; its usual metadata is SQL NULL.

Why: the list indexes of interrupts and the unfiltered list index of threads ended with the
row's text id (33 and 37 bytes) only to break ties between rows created at the same instant.
Ending them at ``created_at`` keeps the same order (PostgreSQL sorts the few tied rows after the
index scan, an incremental sort, and uses the cursor's ``created_at`` as the scan's bound) at
about half the bytes. The filtered thread lists keep the id: with a generic plan for
``status = $1`` PostgreSQL would otherwise walk ``ix_threads_created`` and filter, reading the
whole index for a rare status or graph. Interrupt lists always filter on status, so no index of
all interrupts competes; nor with the event cursor, which ends at ``tx`` likewise. These
indexes' keys grow with time: rows are added at the end of each key range, so they are built
full (fillfactor 100 instead of 90, on PostgreSQL).

A paused thread's question (its INTERRUPT write) was a ``checkpoint_writes`` row of its own,
with a five-column text primary key: ``checkpoints.writes`` now holds the writes a run makes
together with its checkpoint (later writes still go to ``checkpoint_writes``), deflated against
the row's data when shorter; ``writes_dict`` keeps that data if the checkpoint is put again.
``metadata`` becomes nullable: NULL is the engine's usual metadata (JSON ``null`` in rows
written before).

Rows written before are read as they are; nothing is converted. Downgrading is schema only:
checkpoints written by this version (inline writes, compact tasks, ``~`` created_at) need it to
be read, so downgrade only a database whose threads will not be resumed or whose checkpoints
were written before.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, columns before, columns after, partial on tenant).
_LIST_INDEXES = (
    (
        "ix_threads_status_created",
        "threads",
        ["status", "created_at", "thread_id"],
        ["status", "created_at", "thread_id"],
        False,
    ),
    (
        "ix_threads_graph_status_created",
        "threads",
        ["graph", "status", "created_at", "thread_id"],
        ["graph", "status", "created_at", "thread_id"],
        False,
    ),
    (
        "ix_threads_tenant_status_created",
        "threads",
        ["tenant", "status", "created_at", "thread_id"],
        ["tenant", "status", "created_at", "thread_id"],
        True,
    ),
    ("ix_threads_created", "threads", ["created_at", "thread_id"], ["created_at"], False),
    (
        "ix_interrupts_status_created",
        "interrupts",
        ["status", "created_at", "id"],
        ["status", "created_at"],
        False,
    ),
    (
        "ix_interrupts_graph_status_created",
        "interrupts",
        ["graph", "status", "created_at", "id"],
        ["graph", "status", "created_at"],
        False,
    ),
    (
        "ix_interrupts_tenant_status_created",
        "interrupts",
        ["tenant", "status", "created_at", "id"],
        ["tenant", "status", "created_at"],
        True,
    ),
)


def _create_index(
    name: str, table: str, columns: list[str], tenant: bool, fillfactor: int | None = None
) -> None:
    where = sa.text("tenant IS NOT NULL") if tenant else None
    options = {} if fillfactor is None else {"postgresql_with": {"fillfactor": fillfactor}}
    op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where, **options)


def upgrade() -> None:
    for name, table, _, columns, tenant in _LIST_INDEXES:
        op.drop_index(name, table_name=table)
        _create_index(name, table, columns, tenant, fillfactor=100)
    op.drop_index("ix_events_cursor", table_name="events")
    _create_index("ix_events_cursor", "events", ["tx"], False, fillfactor=100)
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(sa.Column("writes", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("writes_dict", sa.LargeBinary(), nullable=True))
        batch.alter_column("metadata", nullable=True, server_default=None)


def downgrade() -> None:
    op.drop_index("ix_events_cursor", table_name="events")
    _create_index("ix_events_cursor", "events", ["tx", "id"], False)
    op.execute("UPDATE checkpoints SET metadata = 'null' WHERE metadata IS NULL")
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("writes_dict")
        batch.drop_column("writes")
        batch.alter_column("metadata", nullable=False, server_default=sa.text("'{}'"))
    for name, table, columns, _, tenant in _LIST_INDEXES:
        op.drop_index(name, table_name=table)
        _create_index(name, table, columns, tenant)
