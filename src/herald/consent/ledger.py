"""The append-only consent and suppression ledger: record events with provenance, read them back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from herald.consent.policy import (
    ALL_PURPOSES,
    CHANNELS,
    KINDS,
    PURPOSES,
    ConsentEvent,
    Verdict,
    can_contact,
)
from herald.core.errors import InvalidInputError
from herald.db.tables import consent_events


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
    if rows:
        conn.execute(consent_events.insert(), list(rows))


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


def suppress_address(
    conn: sa.Connection,
    person_id: int,
    channel: str,
    kind: str,
    *,
    source: str,
    details: str,
    now: dt.datetime,
) -> None:
    """Close one person's address on one channel for every purpose, in the caller's transaction.

    An append-only event like any other (so an explicit re-subscription is still the only way back);
    `details` keeps the evidence: the address, the SMTP reply or the provider's error code.
    """
    record_events(conn, [event_row(person_id, channel, ALL_PURPOSES, kind, source=source, now=now, note=details)])
