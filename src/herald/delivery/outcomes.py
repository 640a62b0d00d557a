"""Map provider outcomes onto people: the event log, and suppression in the consent ledger for bounces."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from herald.channels.base import OutcomeKind, ProviderOutcome, Severity
from herald.consent.ledger import suppress_address
from herald.consent.policy import BOUNCE_SOURCE, CHANNELS, COMPLAINT_SOURCE, OPT_OUT_SOURCE
from herald.db.event_log import append_event, append_events, recent_events

# The consent kind and source each suppressing outcome writes.
_SUPPRESSION: dict[OutcomeKind, tuple[str, str]] = {
    OutcomeKind.BOUNCED: ("bounced", BOUNCE_SOURCE),
    OutcomeKind.COMPLAINED: ("complained", COMPLAINT_SOURCE),
    OutcomeKind.OPTED_OUT: ("unsubscribed", OPT_OUT_SOURCE),
}
# What ends a run of soft bounces: the address took a message since. "sent" does not: a provider or relay
# accepting a message says nothing yet about the address (its soft bounce may still come back).
_SUCCESS = ("delivered",)


def record_sent(
    conn: sa.Connection, *, person_id: int, channel: str, message_id: int, data: dict[str, Any], now: dt.datetime
) -> None:
    append_event(conn, "sent", at=now, person_id=person_id, channel=channel, message_id=message_id, data=data)


def record_sent_many(conn: sa.Connection, sent: Sequence[Mapping[str, Any]], now: dt.datetime) -> None:
    """`record_sent` for a group of completions (each: person_id, channel, message_id, data): one bulk insert."""
    append_events(conn, [{"kind": "sent", "occurred_at": now, **row} for row in sent])


def record_outcome(
    conn: sa.Connection,
    outcome: ProviderOutcome,
    *,
    person_id: int,
    channel: str,
    address: str | None,
    message_id: int,
    provider: str,
    reference: str | None,
    soft_bounce_limit: int,
    now: dt.datetime,
) -> str | None:
    """Log the outcome as an event and, for a hard bounce, a complaint, an opt-out or the soft bounce that
    reaches the limit, suppress the address on its channel for every purpose. Returns the consent kind
    written, if any. Call it in the transaction that records the outcome on the ledger."""
    data: dict[str, Any] = {"provider": provider, "reference": reference, "address": address}
    if outcome.code:
        data["code"] = outcome.code
    if outcome.detail:
        data["detail"] = outcome.detail[:1000]
    if outcome.severity is not None:
        data["severity"] = outcome.severity.value
    append_event(
        conn, outcome.kind.value, at=now, person_id=person_id, channel=channel, message_id=message_id, data=data
    )
    if channel not in CHANNELS:
        return None  # webhooks have no consent ledger: an endpoint is not a person's address
    evidence = f"{outcome.kind.value}"
    evidence += f" ({outcome.severity.value})" if outcome.severity else ""
    evidence += f" of {address or '?'} via {provider}: {outcome.code or ''} {outcome.detail}".rstrip()
    if outcome.suppresses:
        kind, source = _SUPPRESSION[outcome.kind]
        suppress_address(conn, person_id, channel, kind, source=source, details=evidence[:2000], now=now)
        return kind
    soft = outcome.kind is OutcomeKind.BOUNCED and outcome.severity is Severity.SOFT
    if soft and soft_bounces_in_a_row(conn, person_id, channel) >= soft_bounce_limit:
        details = f"{evidence} [{soft_bounce_limit} soft bounces in a row]"
        suppress_address(conn, person_id, channel, "suppressed", source=BOUNCE_SOURCE, details=details[:2000], now=now)
        return "suppressed"
    return None


def soft_bounces_in_a_row(conn: sa.Connection, person_id: int, channel: str) -> int:
    """Soft bounces on this person's channel since the last message delivered to it (newest first)."""
    rows = recent_events(conn, person_id=person_id, channel=channel, kinds=("bounced", *_SUCCESS))
    count = 0
    for kind, data in rows:
        if kind in _SUCCESS:
            break
        if data.get("severity") == Severity.SOFT.value:
            count += 1
    return count
