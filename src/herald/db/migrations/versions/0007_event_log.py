"""the append-only event log and handler cursors

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 04:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import herald.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("origin_type", sa.String(length=32), nullable=True),
        sa.Column("origin_id", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", herald.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "data", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_kind_id", "events", ["kind", "id"])
    op.create_index(op.f("ix_events_person_id"), "events", ["person_id"])
    op.create_index(op.f("ix_events_message_id"), "events", ["message_id"])
    op.create_table(
        "event_cursors",
        sa.Column("handler", sa.String(length=120), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", herald.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("handler", name=op.f("pk_event_cursors")),
    )


def downgrade() -> None:
    op.drop_table("event_cursors")
    op.drop_index(op.f("ix_events_message_id"), table_name="events")
    op.drop_index(op.f("ix_events_person_id"), table_name="events")
    op.drop_index("ix_events_kind_id", table_name="events")
    op.drop_table("events")
