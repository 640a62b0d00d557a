"""The simulation: the launch's own planning run over the audience with no writes — who gets what, when, why not."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from herald.campaigns import audience, launch, store
from herald.campaigns.model import Campaign, CampaignStatus
from herald.campaigns.plan import NOT_ACTIVE, PersonPlan, Planning, collector_paused, plan_chunk
from herald.core.errors import InvalidInputError
from herald.db.engine import read_connection
from herald.db.runtime import Runtime
from herald.delivery import campaign_rows
from herald.delivery.planner import Skip, start_zone
from herald.delivery.reasons import describe_reason, reason_kind
from herald.schedule.timezones import ZoneResolution, load_zone
from herald.templates.store import load_template

MAX_PER_PAGE = 1000
GUESSED = ("account_default", "unknown")  # no zone of the person's own: the account's (else UTC) stands in


@dataclass(frozen=True, slots=True)
class SimulatedRow:
    """One recipient: what a launch now would write for them (or that they already have this campaign's message)."""

    person_id: int
    name: str
    outcome: str  # send | hold | skip | duplicate
    status: str | None  # the ledger status launch writes: queued | held (None: duplicate, nothing written)
    reason: str | None  # hold/skip reason code (quiet_hours, no_consent:unknown, missing_variable:x, capped_hold, …)
    reason_text: str
    channel: str | None  # the first usable channel of the plan
    send_at: dt.datetime | None  # UTC: when it becomes due (available_at)
    local_send_at: dt.datetime | None  # the same instant in the recipient's zone
    zone: str | None  # the zone local times are shown in
    zone_source: str  # contact | phone | address | account_default | unknown
    zone_note: str | None = None  # e.g. "time zone unknown: the account zone was used"
    quiet_until: dt.datetime | None = None  # a quiet-hours hold: when the window opens

    def to_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "outcome": self.outcome,
            "status": self.status,
            "reason": self.reason,
            "reason_text": self.reason_text,
            "channel": self.channel,
            "send_at": self.send_at.isoformat() if self.send_at else None,
            "local_send_at": self.local_send_at.isoformat() if self.local_send_at else None,
            "zone": self.zone,
            "zone_source": self.zone_source,
            "zone_note": self.zone_note,
            "quiet_until": self.quiet_until.isoformat() if self.quiet_until else None,
        }


@dataclass(frozen=True, slots=True)
class SimulationPage:
    campaign_id: int
    total: int  # recipients simulated (the whole audience)
    by_outcome: Mapping[str, int]  # send | hold | skip | duplicate → people
    by_reason: Mapping[str, int]  # reason kind (quiet_hours, missing_variable, no_consent, capped_hold, …) → people
    by_channel: Mapping[str, int]  # channel → people who would get a message on it (send, or a hold that ends)
    rows: tuple[SimulatedRow, ...]  # this page
    page: int
    per_page: int
    audience: str  # "segment" (before launch: the segment now) or "frozen" (after: the launch's set)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "total": self.total,
            "by_outcome": dict(self.by_outcome),
            "by_reason": dict(self.by_reason),
            "by_channel": dict(self.by_channel),
            "page": self.page,
            "per_page": self.per_page,
            "audience": self.audience,
            "notes": list(self.notes),
            "rows": [r.to_json() for r in self.rows],
        }


def simulate_campaign(runtime: Runtime, campaign_id: int, *, page: int, per_page: int) -> SimulationPage:
    """Plan the whole audience as a launch now would (same code, same order, same clock), writing nothing."""
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInputError(f"page starts at 1; per_page is 1 to {MAX_PER_PAGE}", field="per_page")
    now = runtime.clock.now()
    with read_connection(runtime.engine) as conn:
        campaign = store.load(conn, campaign_id)
        frozen = campaign.status != CampaignStatus.DRAFT
        definition = campaign.audience if frozen else audience.segment_definition(conn, campaign.segment_id)
        assert definition is not None
        start = campaign.launched_at if frozen and campaign.launched_at else now
        planning = launch.prepare(conn, runtime, _pinned(conn, campaign), start)
        tally = _Tally()
        wanted = range((page - 1) * per_page, page * per_page)
        rows: list[SimulatedRow] = []
        offset, last = 0, None  # the live match is read by id after the last one (no OFFSET rescans)
        while True:
            ids = (
                audience.frozen_page(conn, campaign_id, offset=offset, limit=launch.CHUNK)
                if frozen
                else audience.live_page(conn, definition, now, limit=launch.CHUNK, after=last)
            )
            if not ids:
                break
            with collector_paused():
                rows.extend(_simulate_chunk(conn, planning, ids, offset, now, tally, wanted))
            offset, last = offset + len(ids), ids[-1]
    notes = _notes(planning, tally)
    return SimulationPage(
        campaign_id=campaign_id,
        total=tally.total,
        by_outcome=dict(tally.by_outcome),
        by_reason=dict(tally.by_reason),
        by_channel=dict(tally.by_channel),
        rows=tuple(rows),
        page=page,
        per_page=per_page,
        audience="frozen" if frozen else "segment",
        notes=notes,
    )


def _simulate_chunk(
    conn: sa.Connection,
    planning: Planning,
    ids: list[int],
    offset: int,
    now: dt.datetime,
    tally: _Tally,
    wanted: range,
) -> list[SimulatedRow]:
    """Plan one chunk and count it; returns the rows of the page shown that fall in it."""
    duplicates = campaign_rows.existing_people(conn, ids, planning.campaign.message_key)
    rows = []
    for plan in plan_chunk(conn, planning, list(enumerate(ids, start=offset)), now, rows=False):
        duplicate = plan.person_id in duplicates
        tally.add(plan, duplicate=duplicate)
        if plan.ordinal in wanted:  # the words and local times only for the page shown
            rows.append(_row(plan, planning, duplicate=duplicate))
    return rows


def _pinned(conn: sa.Connection, campaign: Campaign) -> Campaign:
    """A draft pins its version at creation; an older draft without one uses the latest (as launch would)."""
    if campaign.template_version is not None:
        return campaign
    version = load_template(conn, campaign.template_id, None).version
    return replace(campaign, template_version=version)


class _Tally:
    def __init__(self) -> None:
        self.total = 0
        self.by_outcome: Counter[str] = Counter()
        self.by_reason: Counter[str] = Counter()
        self.by_channel: Counter[str] = Counter()
        self.unknown_zone = 0

    def add(self, plan: PersonPlan, *, duplicate: bool) -> None:
        """Count one person as `_row` would show them (outcome, reason kind, channel), without building the row."""
        self.total += 1
        planned = plan.planned
        if duplicate:
            self.by_outcome["duplicate"] += 1
            self.by_reason["duplicate"] += 1
            return
        if planned is None or isinstance(planned, Skip):
            self.by_outcome["skip"] += 1
            self.by_reason[reason_kind(planned.reason) if planned is not None else NOT_ACTIVE] += 1
            return
        self.by_outcome["send" if planned.status == "queued" else "hold"] += 1
        if planned.hold_reason:
            self.by_reason[reason_kind(planned.hold_reason)] += 1
        if planned.status == "queued" or planned.hold_reason in ("quiet_hours", "capped_hold"):
            self.by_channel[planned.channels[0]] += 1
        if planned.zone_source in GUESSED:
            self.unknown_zone += 1


def _notes(planning: Planning, tally: _Tally) -> tuple[str, ...]:
    notes = []
    if tally.unknown_zone:
        zone = planning.rules.account_zone or "UTC"
        notes.append(f"{tally.unknown_zone:,} recipient(s) have no known time zone: {zone} (the account zone) used.")
    at = planning.campaign.schedule.at
    if planning.campaign.schedule.kind == "at" and at is not None and at < planning.start:
        notes.append("The scheduled instant has passed: messages would go now.")
    return tuple(notes)


def _row(plan: PersonPlan, planning: Planning, *, duplicate: bool) -> SimulatedRow:
    recipient = plan.recipient
    name = (
        " ".join(str(recipient.fields.get(k) or "") for k in ("first_name", "last_name")).strip() if recipient else ""
    )
    if duplicate:
        return _unplanned(plan, name, "duplicate", None, "duplicate", "Already has this campaign's message.")
    planned = plan.planned
    if planned is None:
        return _unplanned(plan, name, "skip", None, NOT_ACTIVE, "No longer an active contact (merged or erased).")
    if isinstance(planned, Skip):
        return _unplanned(plan, name, "skip", "held", planned.reason, _skip_text(planned))
    zone = start_zone(ZoneResolution(tuple(planned.zones), planned.zone_source, False), planning.rules)
    local = planned.available_at.astimezone(load_zone(zone))
    note = f"time zone unknown: {zone} (the account zone) used" if planned.zone_source in GUESSED else None
    quiet_until = planned.available_at if planned.hold_reason == "quiet_hours" else None
    reason = planned.hold_reason
    text = describe_reason(reason)
    if quiet_until is not None:
        text = f"Quiet hours until {local:%Y-%m-%d %H:%M} {zone} ({planned.available_at:%H:%M} UTC)."
    return SimulatedRow(
        person_id=plan.person_id,
        name=name,
        outcome="send" if planned.status == "queued" else "hold",
        status=planned.status,
        reason=reason,
        reason_text=text,
        channel=planned.channels[0],
        send_at=planned.available_at.astimezone(dt.UTC),
        local_send_at=local,
        zone=zone,
        zone_source=planned.zone_source,
        zone_note=note,
        quiet_until=quiet_until,
    )


def _unplanned(plan: PersonPlan, name: str, outcome: str, status: str | None, reason: str, text: str) -> SimulatedRow:
    return SimulatedRow(plan.person_id, name, outcome, status, reason, text, None, None, None, None, "unknown")


def _skip_text(skip: Skip) -> str:
    parts = [f"{channel}: {describe_reason(reason)}" for channel, reason in skip.skips]
    return " ".join(parts) or describe_reason(skip.reason)
