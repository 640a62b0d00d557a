"""quiet hours applied on the ledger row (zone, window); worker heartbeats

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import herald.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("quiet_zone", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("quiet_window", sa.String(length=200), nullable=True))
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("started_at", herald.db.types.UTCDateTime(), nullable=False),
        sa.Column("seen_at", herald.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_worker_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("quiet_window")
        batch.drop_column("quiet_zone")
