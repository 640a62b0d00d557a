"""audit_log.actor_kind: whose id actor_id is (operator, api_key, cli, system)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 04:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("actor_kind", sa.String(length=16), nullable=True))
    # Rows written before the column existed: an actor_id was always an operator's, "cli" was the CLI.
    op.execute("UPDATE audit_log SET actor_kind = 'operator' WHERE actor_id IS NOT NULL")
    op.execute("UPDATE audit_log SET actor_kind = 'cli' WHERE actor_id IS NULL AND actor = 'cli'")
    op.execute("UPDATE audit_log SET actor_kind = 'system' WHERE actor_id IS NULL AND actor = 'system'")


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("actor_kind")
