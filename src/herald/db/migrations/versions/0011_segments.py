"""saved segments, an index for segment counts, and the consent ledger's current state per person × channel × purpose (backfilled)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 07:40:00
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import NamedTuple

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

# Frozen copies of the columns this migration reads and writes (the live table modules may change later).
_events = sa.table(
    "consent_events",
    sa.column("person_id", sa.BigInteger),
    sa.column("channel", sa.String),
    sa.column("purpose", sa.String),
    sa.column("kind", sa.String),
    sa.column("explicit", sa.Boolean),
    sa.column("occurred_at", sa.DateTime(timezone=True)),
    sa.column("id", sa.BigInteger),
)
_states = sa.table(
    "consent_states",
    sa.column("person_id", sa.BigInteger),
    sa.column("channel", sa.String),
    sa.column("purpose", sa.String),
    sa.column("state", sa.String),
)


# A frozen copy of consent/policy.py's fold at this revision (migrations may not import slices, and must
# not change meaning when the slice does); tests/property/test_consent_states.py checks that a
# downgrade + upgrade rebuilds exactly the rows the live code keeps.
CHANNELS = ("email", "sms", "whatsapp", "voice")
PURPOSES = ("marketing", "transactional")
SUBSCRIBED = "subscribed"
OPT_OUTS = ("unsubscribed", "bounced", "complained", "suppressed")


class ConsentEvent(NamedTuple):  # not a dataclass: Alembic loads this file outside sys.modules
    channel: str
    purpose: str
    kind: str
    occurred_at: dt.datetime
    explicit: bool


def consent_state(events: list[ConsentEvent], channel: str, purpose: str) -> str:
    state = "unknown"
    for event in events:  # already in (occurred_at, id) order
        if event.channel != channel or event.purpose not in (purpose, "all"):
            continue
        if event.kind == SUBSCRIBED:
            if state in OPT_OUTS and not event.explicit:
                continue  # opt-outs are sticky: only an explicit subscription re-opens the channel
            state = SUBSCRIBED
        elif event.kind in OPT_OUTS:
            state = event.kind
    return state


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):  # SQLite hands back text through a lightweight table
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _histories(conn: sa.Connection) -> Iterator[tuple[int, list[ConsentEvent]]]:
    query = sa.select(_events).order_by(_events.c.person_id, _events.c.occurred_at, _events.c.id)
    current: int | None = None
    history: list[ConsentEvent] = []
    for row in conn.execute(query.execution_options(yield_per=10_000)):
        if row.person_id != current:
            if current is not None:
                yield current, history
            current, history = row.person_id, []
        history.append(ConsentEvent(row.channel, row.purpose, row.kind, _aware(row.occurred_at), bool(row.explicit)))
    if current is not None:
        yield current, history


def _backfill() -> None:
    """Fold each person's events with the policy's own rule (the same fold consent/ledger.py keeps current)."""
    conn = op.get_bind()
    rows: list[dict[str, object]] = []
    for person_id, history in _histories(conn):
        for channel in CHANNELS:
            for purpose in PURPOSES:
                state = consent_state(history, channel, purpose)
                if state != "unknown":
                    rows.append({"person_id": person_id, "channel": channel, "purpose": purpose, "state": state})
    for start in range(0, len(rows), 10_000):
        conn.execute(_states.insert(), rows[start : start + 10_000])


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )
    op.create_table(
        "consent_states",
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["people.id"], name=op.f("fk_consent_states_person_id_people")),
        sa.PrimaryKeyConstraint("person_id", "channel", "purpose", name=op.f("pk_consent_states")),
    )
    op.create_index("ix_consent_states_lookup", "consent_states", ["channel", "purpose", "state", "person_id"])
    op.create_index("ix_people_created_at_status", "people", ["created_at", "status"])
    _backfill()


def downgrade() -> None:
    op.drop_index("ix_people_created_at_status", table_name="people")
    op.drop_index("ix_consent_states_lookup", table_name="consent_states")
    op.drop_table("consent_states")
    op.drop_table("segments")
