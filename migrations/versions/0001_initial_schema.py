"""Initial schema: threads, runs, checkpoints, checkpoint_writes, interrupts, idempotency_keys.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Self-contained on purpose: migrations must not change when app code does.
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def _now() -> sa.TextClause:
    if op.get_bind().dialect.name == "sqlite":
        return sa.text("(strftime('%Y-%m-%d %H:%M:%f', 'now'))")
    return sa.text("now()")


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    now = _now()

    op.create_table(
        "threads",
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("input", JSON, nullable=True),
        sa.Column("values", JSON, nullable=True),
        sa.Column("next", JSON, nullable=True),
        sa.Column("metadata", JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("error", JSON, nullable=True),
        sa.Column("webhook", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, server_default=now, nullable=False),
        sa.Column("updated_at", TIMESTAMP, server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("thread_id", name="pk_threads"),
    )
    op.create_index("ix_threads_status_created", "threads", ["status", "created_at", "thread_id"])
    op.create_index(
        "ix_threads_graph_status_created", "threads", ["graph", "status", "created_at", "thread_id"]
    )
    op.create_index(
        "ix_threads_tenant_status_created", "threads", ["tenant", "status", "created_at", "thread_id"]
    )
    op.create_index("ix_threads_created", "threads", ["created_at", "thread_id"])
    if is_pg:
        op.create_index("ix_threads_metadata", "threads", ["metadata"], postgresql_using="gin")

    op.create_table(
        "runs",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("rerun", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=now, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.thread_id"],
            name="fk_runs_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    active = sa.text("status IN ('queued', 'running')")
    op.create_index(
        "ux_runs_active_thread",
        "runs",
        ["thread_id"],
        unique=True,
        postgresql_where=active,
        sqlite_where=active,
    )
    queued = sa.text("status = 'queued'")
    op.create_index(
        "ix_runs_claim", "runs", ["status", "id"], postgresql_where=queued, sqlite_where=queued
    )
    running = sa.text("status = 'running'")
    op.create_index(
        "ix_runs_lease",
        "runs",
        ["lease_expires_at"],
        postgresql_where=running,
        sqlite_where=running,
    )
    op.create_index("ix_runs_thread", "runs", ["thread_id", "id"])

    op.create_table(
        "checkpoints",
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column("checkpoint_id", sa.Text(), nullable=False),
        sa.Column("parent_id", sa.Text(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("metadata", JSON, server_default=sa.text("'{}'"), nullable=False),
        sa.Column("created_at", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("thread_id", "ns", "checkpoint_id", name="pk_checkpoints"),
    )

    op.create_table(
        "checkpoint_writes",
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("ns", sa.Text(), nullable=False),
        sa.Column("checkpoint_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id", "ns", "checkpoint_id", "task_id", "channel", name="pk_checkpoint_writes"
        ),
    )

    op.create_table(
        "interrupts",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("thread_id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=True),
        sa.Column("graph", sa.Text(), nullable=False),
        sa.Column("node", sa.Text(), nullable=False),
        sa.Column("ns", sa.Text(), server_default="", nullable=False),
        sa.Column("checkpoint_id", sa.Text(), nullable=False),
        sa.Column("value", JSON, nullable=True),
        sa.Column("schema", JSON, nullable=True),
        sa.Column("has_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("default", JSON, nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("created_at", TIMESTAMP, server_default=now, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("answer", JSON, nullable=True),
        sa.Column("answered_by", sa.Text(), nullable=True),
        sa.Column("answered_at", TIMESTAMP, nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("consumed_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.thread_id"],
            name="fk_interrupts_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_interrupts"),
    )
    op.create_index("ix_interrupts_status_created", "interrupts", ["status", "created_at", "id"])
    op.create_index("ix_interrupts_thread_status", "interrupts", ["thread_id", "status"])
    op.create_index(
        "ix_interrupts_graph_status_created", "interrupts", ["graph", "status", "created_at", "id"]
    )
    op.create_index(
        "ix_interrupts_tenant_status_created", "interrupts", ["tenant", "status", "created_at", "id"]
    )
    pending_deadline = sa.text("status = 'pending' AND expires_at IS NOT NULL")
    op.create_index(
        "ix_interrupts_expires",
        "interrupts",
        ["expires_at"],
        postgresql_where=pending_deadline,
        sqlite_where=pending_deadline,
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", JSON, nullable=True),
        sa.Column("created_at", TIMESTAMP, server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("interrupts")
    op.drop_table("checkpoint_writes")
    op.drop_table("checkpoints")
    op.drop_table("runs")
    op.drop_table("threads")
