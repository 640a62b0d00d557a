"""ledger rows keep a template's variables (render at claim) and the campaign that planned them

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 07:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("variables", JSON, nullable=True))
        batch.add_column(sa.Column("campaign_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_messages_campaign_id", "messages", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_campaign_id", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("campaign_id")
        batch.drop_column("variables")
