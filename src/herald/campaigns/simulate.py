"""The simulation: the launch's own planning run over the audience with no writes — who gets what, when, why not."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.db.runtime import Runtime


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
    raise NotImplementedError
