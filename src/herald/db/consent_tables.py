"""The consent slice's table: the append-only consent and suppression ledger."""

from __future__ import annotations

import sqlalchemy as sa

from herald.db.tables import id_column, metadata, ref_column
from herald.db.types import UTCDateTime

consent_events = sa.Table(
    "consent_events",
    metadata,
    id_column(),
    ref_column("person_id", "people"),
    sa.Column("channel", sa.String(16), nullable=False),  # email | sms | whatsapp | voice
    sa.Column("purpose", sa.String(16), nullable=False),  # marketing | transactional | all
    sa.Column("kind", sa.String(16), nullable=False),  # subscribed | unsubscribed | bounced | complained | suppressed
    sa.Column("explicit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("import_batches.id"), index=True),
    sa.Column("note", sa.Text),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)


# The current verdict per person × channel × purpose, folded from consent_events by consent/policy.py's
# rule and rewritten in the same transaction as every write to consent_events (consent/ledger.py), so a
# segment can count "subscribed on e-mail" over a million people without replaying the ledger. No row
# means no event applies: the state is "unknown".
consent_states = sa.Table(
    "consent_states",
    metadata,
    sa.Column("person_id", sa.BigInteger, sa.ForeignKey("people.id"), primary_key=True),
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("purpose", sa.String(16), primary_key=True),  # marketing | transactional (never "all")
    sa.Column("state", sa.String(16), nullable=False),  # subscribed | unsubscribed | bounced | complained | suppressed
    # What the segment count reads: an index-only scan of one channel × purpose × state.
    sa.Index("ix_consent_states_lookup", "channel", "purpose", "state", "person_id"),
)
