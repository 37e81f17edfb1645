"""Event listeners: the processes that want every event NOTIFYed, so writers can skip it otherwise.

Why: every event-recording transaction sent ``NOTIFY hitl_events``. PostgreSQL serialises
notifying commits on one database-wide lock held through the commit, and wakes every listening
connection of the database to read the queue, while nobody may be listening for events at all
(a ``?wait=true`` request whose run executes in its own process needs none). A process now keeps
a row here while it listens (the settle watch of a waiting request, the broadcaster of an event
stream), refreshed from the database clock; writers notify when a row is live or the events
created webhook deliveries.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_listeners",
        sa.Column("listener_id", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("listener_id", name="pk_event_listeners"),
    )


def downgrade() -> None:
    op.drop_table("event_listeners")
