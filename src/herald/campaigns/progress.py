"""A campaign's progress (its ledger rows counted by status, hold reason and channel) and its held recipients."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True, slots=True)
class Progress:
    campaign_id: int
    status: str  # the campaign's status
    recipients: int  # the frozen audience
    planned: int  # ledger rows written so far
    by_status: Mapping[str, int] = field(default_factory=dict)  # queued, sending, sent, delivered, held, failed, …
    by_reason: Mapping[str, int] = field(default_factory=dict)  # hold reason kind → rows held
    by_channel: Mapping[str, int] = field(default_factory=dict)  # current channel → rows (not held)
    job: Mapping[str, Any] | None = None  # the launch job: status, progress {done, total, percent}, error

    @property
    def done(self) -> bool:
        """Nothing left that the worker will still move by itself."""
        waiting = ("queued", "retry_wait", "sending", "unknown")
        return self.planned >= self.recipients and not any(self.by_status.get(s, 0) for s in waiting)

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "status": self.status,
            "recipients": self.recipients,
            "planned": self.planned,
            "by_status": dict(self.by_status),
            "by_reason": dict(self.by_reason),
            "by_channel": dict(self.by_channel),
            "job": dict(self.job) if self.job is not None else None,
            "done": self.done,
        }


@dataclass(frozen=True, slots=True)
class HeldRow:
    message_id: int
    person_id: int
    name: str
    reason: str  # the stored code, e.g. missing_variable:first_name
    reason_text: str  # the code in words
    channel: str | None
    available_at: dt.datetime


@dataclass(frozen=True, slots=True)
class HeldPage:
    campaign_id: int
    rows: tuple[HeldRow, ...]
    total: int
    page: int
    per_page: int

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "total": self.total,
            "page": self.page,
            "per_page": self.per_page,
            "rows": [
                {
                    "message_id": r.message_id,
                    "person_id": r.person_id,
                    "name": r.name,
                    "reason": r.reason,
                    "reason_text": r.reason_text,
                    "channel": r.channel,
                    "available_at": r.available_at.isoformat(),
                }
                for r in self.rows
            ],
        }


def campaign_progress(engine: sa.Engine, campaign_id: int) -> Progress:
    raise NotImplementedError


def held_recipients(engine: sa.Engine, campaign_id: int, *, page: int, per_page: int) -> HeldPage:
    raise NotImplementedError
