"""attempts record the worker that submitted them (whose wire marks tell whether the final dot left)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_attempts") as batch:
        batch.add_column(sa.Column("worker", sa.String(120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("message_attempts") as batch:
        batch.drop_column("worker")
