"""suggestion evidence: structured reasons on merge suggestions, who decided and when

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 04:20:00.000000

Open suggestions from the old name-only scan carry no evidence and are dropped: the next scan
suggests again only the pairs that have evidence. Dismissed and merged ones keep their decision.
Household suggestions from imports keep a `shared_phone` entry (the number itself was not stored).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import herald.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    with op.batch_alter_table("merge_suggestions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence", json_type, server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("decided_at", herald.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("decided_by", sa.String(length=200), nullable=True))
    suggestions = sa.table(
        "merge_suggestions",
        sa.column("status", sa.String),
        sa.column("reason", sa.String),
        sa.column("evidence", json_type),
    )
    op.execute(suggestions.delete().where(suggestions.c.status == "open", suggestions.c.reason.like("similar names%")))
    op.execute(
        suggestions.update()
        .where(suggestions.c.reason == "shared phone, different first name")
        .values(evidence=[{"kind": "shared_phone", "detail": ""}])
    )


def downgrade() -> None:
    with op.batch_alter_table("merge_suggestions", schema=None) as batch_op:
        batch_op.drop_column("decided_by")
        batch_op.drop_column("decided_at")
        batch_op.drop_column("evidence")
