"""The append-only consent and suppression ledger: record events with provenance, read them back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from herald.consent.policy import ALL_PURPOSES, CHANNELS, KINDS, PURPOSES, ConsentEvent, Verdict, can_contact
from herald.core.errors import InvalidInputError
from herald.db.event_log import append_event
from herald.db.tables import consent_events

# Consent changes the event log reports (tracking, journeys and scoring subscribe to them). Bounces and
# complaints are reported by delivery, where they happen, with the message they belong to.
LOGGED_KINDS = ("subscribed", "unsubscribed")


def check_event(channel: str, purpose: str, kind: str) -> None:
    if channel not in CHANNELS:
        raise InvalidInputError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}", field="channel")
    if purpose not in (*PURPOSES, ALL_PURPOSES):
        raise InvalidInputError(f"unknown purpose {purpose!r}", field="purpose")
    if kind not in KINDS:
        raise InvalidInputError(f"unknown consent event {kind!r}; use one of {', '.join(KINDS)}", field="kind")


def event_row(
    person_id: int,
    channel: str,
    purpose: str,
    kind: str,
    *,
    source: str,
    now: dt.datetime,
    occurred_at: dt.datetime | None = None,
    explicit: bool = False,
    batch_id: int | None = None,
    note: str | None = None,
) -> dict[str, object]:
    """A consent_events row ready for a (bulk) insert."""
    check_event(channel, purpose, kind)
    return {
        "person_id": person_id,
        "channel": channel,
        "purpose": purpose,
        "kind": kind,
        "explicit": explicit,
        "source": source,
        "batch_id": batch_id,
        "note": note,
        "occurred_at": occurred_at or now,
        "recorded_at": now,
    }


def record_events(conn: sa.Connection, rows: Sequence[dict[str, object]]) -> None:
    """Append consent rows and, in the same transaction, an event per subscribe or unsubscribe."""
    if not rows:
        return
    conn.execute(consent_events.insert(), list(rows))
    for row in rows:
        if row["kind"] in LOGGED_KINDS:
            occurred_at = row["occurred_at"]
            assert isinstance(occurred_at, dt.datetime)
            person_id = row["person_id"]
            assert isinstance(person_id, int)
            append_event(
                conn,
                str(row["kind"]),
                at=occurred_at,
                person_id=person_id,
                channel=str(row["channel"]),
                data={"purpose": row["purpose"], "source": row["source"], "explicit": bool(row["explicit"])},
            )


def load_events(conn: sa.Connection, person_ids: Iterable[int]) -> dict[int, list[ConsentEvent]]:
    ids = list(person_ids)
    out: dict[int, list[ConsentEvent]] = {pid: [] for pid in ids}
    if not ids:
        return out
    rows = conn.execute(
        sa.select(
            consent_events.c.person_id,
            consent_events.c.channel,
            consent_events.c.purpose,
            consent_events.c.kind,
            consent_events.c.occurred_at,
            consent_events.c.explicit,
            consent_events.c.source,
        )
        .where(consent_events.c.person_id.in_(ids))
        .order_by(consent_events.c.occurred_at, consent_events.c.id)
    )
    for pid, channel, purpose, kind, occurred_at, explicit, source in rows:
        out[pid].append(ConsentEvent(channel, purpose, kind, occurred_at, bool(explicit), source))
    return out


def consent_summary(events: Sequence[ConsentEvent]) -> dict[str, Verdict]:
    """Verdict per 'channel:purpose' for display and export."""
    return {f"{c}:{p}": can_contact(events, c, p) for c in CHANNELS for p in PURPOSES}
