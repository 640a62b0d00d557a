"""The backup slice's table: the record of every backup taken and verified."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

backups = sa.Table(
    "backups",
    metadata,
    id_column(),
    sa.Column("path", sa.String(1000), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # manual | scheduled
    sa.Column("status", sa.String(16), nullable=False),  # verified | failed
    sa.Column("size_bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sha256", sa.String(64)),
    sa.Column("table_counts", JSONType, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("verified_at", UTCDateTime),
)
