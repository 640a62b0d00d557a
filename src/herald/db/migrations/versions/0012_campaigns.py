"""campaigns and the audience each one froze at launch

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import herald.db.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC = herald.db.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("template_id", sa.String(length=200), nullable=False),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("segment_id", sa.BigInteger(), nullable=False),
        sa.Column("audience", JSON, nullable=True),
        sa.Column("channels", JSON, nullable=False),
        sa.Column("message_class", sa.String(length=16), nullable=False),
        sa.Column("schedule", JSON, nullable=False),
        sa.Column("send_rate", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.Column("recipients", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("batch", sa.Integer(), server_default="0", nullable=False),
        sa.Column("planned_through", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("planned_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("frozen_batch", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("launched_at", UTC(), nullable=True),
        sa.Column("finished_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_table(
        "campaign_recipients",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("added_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_recipients_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_campaign_recipients_person_id_people")),
        sa.PrimaryKeyConstraint("campaign_id", "person_id", name=op.f("pk_campaign_recipients")),
    )


def downgrade() -> None:
    op.drop_table("campaign_recipients")
    op.drop_table("campaigns")
