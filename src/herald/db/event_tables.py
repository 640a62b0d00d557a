"""The append-only event log and the cursors its handlers resume from."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata
from herald.db.types import JSONType, UTCDateTime

events = sa.Table(
    "events",
    metadata,
    id_column(),
    sa.Column("kind", sa.String(64), nullable=False),  # past tense: delivered, bounced, unsubscribed…
    sa.Column("person_id", sa.BigInteger, index=True),  # no foreign key: events outlive erased people
    sa.Column("channel", sa.String(16)),
    sa.Column("message_id", sa.BigInteger, index=True),
    # Where it came from: campaign / journey / incident / import / api …, and that thing's id.
    sa.Column("origin_type", sa.String(32)),
    sa.Column("origin_id", sa.BigInteger),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("data", JSONType, nullable=False),
    sa.Index("ix_events_kind_id", "kind", "id"),
)

event_cursors = sa.Table(
    "event_cursors",
    metadata,
    sa.Column("handler", sa.String(120), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
