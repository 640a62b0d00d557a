"""The templates slice's table: immutable, numbered versions of each stored template."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

message_templates = sa.Table(
    "message_templates",
    metadata,
    id_column(),
    sa.Column("template_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("parts", JSONType, nullable=False),
    sa.Column("variables", JSONType, nullable=False),  # path → fallback (null: hold when missing)
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("template_id", "version"),
)
