"""can_contact: a pure verdict over a person's append-only consent events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from herald.core.channels import CONSENT_CHANNELS

CHANNELS = CONSENT_CHANNELS  # the channels the ledger records (herald.core.channels)
PURPOSES = ("marketing", "transactional")
ALL_PURPOSES = "all"
SUBSCRIBED = "subscribed"
OPT_OUTS = ("unsubscribed", "bounced", "complained", "suppressed")
KINDS = (SUBSCRIBED, *OPT_OUTS)


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    channel: str
    purpose: str  # marketing | transactional | all
    kind: str  # subscribed | unsubscribed | bounced | complained | suppressed
    occurred_at: dt.datetime
    explicit: bool = False  # an explicit re-subscription by the person, the only way back after an opt-out
    source: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    state: str  # subscribed | unsubscribed | bounced | complained | suppressed | unknown
    reason: str


def _applies(event: ConsentEvent, channel: str, purpose: str) -> bool:
    return event.channel == channel and event.purpose in (purpose, ALL_PURPOSES)


def _step(state: str, event: ConsentEvent) -> str | None:
    """The state after `event`, or None when the event changes nothing (the one rule every fold uses)."""
    if event.kind == SUBSCRIBED:
        # Imports, merges and API upserts say "subscribed" all the time; none of that may undo an
        # opt-out. Only an explicit consent event (the person asked again) re-subscribes.
        if state in OPT_OUTS and not event.explicit:
            return None
        return SUBSCRIBED
    if event.kind in OPT_OUTS:
        return event.kind
    return None


def consent_state(events: Iterable[ConsentEvent], channel: str, purpose: str) -> tuple[str, ConsentEvent | None]:
    """Fold the events for one channel × purpose in time order; opt-outs are sticky."""
    state, deciding = "unknown", None
    for event in sorted(events, key=lambda e: e.occurred_at):
        if not _applies(event, channel, purpose):
            continue
        after = _step(state, event)
        if after is not None:
            state, deciding = after, event
    return state, deciding


def current_states(events: Iterable[ConsentEvent]) -> dict[tuple[str, str], str]:
    """consent_state for every channel × purpose the events touch, in one pass (the state table's fold).

    Pairs no event applies to are left out (their state is "unknown").
    """
    ordered = sorted(events, key=lambda e: e.occurred_at)
    return fold_states((e.channel, e.purpose, e.kind, e.explicit) for e in ordered)


def fold_states(ordered: Iterable[tuple[str, str, str, bool]]) -> dict[tuple[str, str], str]:
    """current_states over (channel, purpose, kind, explicit) already in time order (as the ledger sorts)."""
    states: dict[tuple[str, str], str] = {}
    for channel, purpose, kind, explicit in ordered:
        event = ConsentEvent(channel, purpose, kind, _EPOCH, bool(explicit))
        for applied in PURPOSES if purpose == ALL_PURPOSES else (purpose,):
            if applied not in PURPOSES:
                continue
            after = _step(states.get((channel, applied), "unknown"), event)
            if after is not None:
                states[(channel, applied)] = after
    return states


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # _step never reads the instant; the order is the caller's


def can_contact(events: Iterable[ConsentEvent], channel: str, purpose: str) -> Verdict:
    """May we contact this person on this channel for this purpose?"""
    if channel not in CHANNELS or purpose not in PURPOSES:
        return Verdict(False, "unknown", f"unknown channel/purpose {channel}/{purpose}")
    state, deciding = consent_state(events, channel, purpose)
    if state in OPT_OUTS:
        assert deciding is not None
        when = deciding.occurred_at.isoformat()
        return Verdict(False, state, f"{state} on {channel} ({deciding.purpose}) at {when} via {deciding.source}")
    if state == SUBSCRIBED:
        return Verdict(True, state, f"subscribed on {channel}")
    if purpose == "transactional":
        return Verdict(True, state, "transactional messages need no marketing consent")
    return Verdict(False, state, f"no marketing consent on {channel}")


# Provenance of suppressions the delivery core writes: the `source` column says which kind of evidence.
BOUNCE_SOURCE = "bounce"
COMPLAINT_SOURCE = "complaint"
OPT_OUT_SOURCE = "provider_opt_out"


def suppression_reason(events: Sequence[ConsentEvent], channel: str, purpose: str) -> str | None:
    """Why the delivery core may not use this channel: `suppressed:…` for bounce/complaint evidence,
    `no_consent:<state>` for the rest, None when allowed."""
    verdict = can_contact(events, channel, purpose)
    if verdict.allowed:
        return None
    _, deciding = consent_state(events, channel, purpose)
    if deciding is not None and deciding.source in (BOUNCE_SOURCE, COMPLAINT_SOURCE, OPT_OUT_SOURCE):
        if deciding.kind == "bounced":
            return "suppressed:hard_bounce"
        if deciding.kind == "suppressed":
            return "suppressed:soft_bounces"
        if deciding.kind == "complained":
            return "suppressed:complaint"
        return "suppressed:opted_out"
    return f"no_consent:{verdict.state}"
