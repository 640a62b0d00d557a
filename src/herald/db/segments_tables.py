"""The segments slice's table: saved segment definitions (a filter tree as JSON) by unique name."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

segments = sa.Table(
    "segments",
    metadata,
    id_column(),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("definition", JSONType, nullable=False),  # segments.audience.Definition.as_data()
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
