"""import warnings: issue kind (reject | warning), failed batches' error code, the file's encoding

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_rejects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="reject", nullable=False))
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("encoding", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("encoding_guessed", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("import_batches", schema=None) as batch_op:
        batch_op.drop_column("encoding_guessed")
        batch_op.drop_column("encoding")
        batch_op.drop_column("error_code")
    with op.batch_alter_table("import_rejects", schema=None) as batch_op:
        batch_op.drop_column("kind")
