"""A campaign's progress (its ledger rows counted by status, hold reason and channel) and its held recipients."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from herald.campaigns import store
from herald.campaigns.model import Campaign, CampaignStatus
from herald.contacts.store import people_by_id
from herald.core.errors import InvalidInputError
from herald.db.engine import read_connection
from herald.delivery import campaign_rows
from herald.delivery.reasons import describe_reason, reason_kind
from herald.jobs.store import get_job


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
        waiting = campaign_rows.WAITING
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
    with read_connection(engine) as conn:
        campaign = store.load(conn, campaign_id)
        counts = campaign_rows.counts(conn, campaign_id)
    return _progress(engine, campaign, counts)


def campaigns_progress(engine: sa.Engine, found: Sequence[Campaign]) -> dict[int, Progress]:
    """The progress of several campaigns with one grouped count (the campaigns list)."""
    with read_connection(engine) as conn:
        counts = campaign_rows.counts_many(conn, [campaign.id for campaign in found])
    return {campaign.id: _progress(engine, campaign, counts[campaign.id]) for campaign in found}


def _progress(engine: sa.Engine, campaign: Campaign, counts: Sequence[campaign_rows.RowCount]) -> Progress:
    job = get_job(engine, campaign.job_id) if campaign.job_id else None
    by_status: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    for item in counts:
        by_status[item.status] += item.count
        if item.status == "held" and item.hold_reason:
            by_reason[reason_kind(item.hold_reason)] += item.count
        elif item.channel:
            by_channel[item.channel] += item.count
    status = campaign.status.value
    progress = Progress(
        campaign_id=campaign.id,
        status=status,
        recipients=campaign.recipients,
        planned=sum(by_status.values()),
        by_status=dict(by_status),
        by_reason=dict(by_reason),
        by_channel=dict(by_channel),
        job=_job_summary(job),
    )
    if status == CampaignStatus.RUNNING and progress.done:
        # Nothing left that the worker moves by itself: shown as finished (held rows stay listed).
        progress = replace(progress, status=CampaignStatus.FINISHED.value)
    return progress


def _name(person: Any) -> str:
    if person is None:
        return ""
    return f"{person['first_name'] or ''} {person['last_name'] or ''}".strip()


def _job_summary(job: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if job is None:
        return None
    return {k: job.get(k) for k in ("id", "status", "progress", "error", "attempts")}


def held_recipients(engine: sa.Engine, campaign_id: int, *, page: int, per_page: int) -> HeldPage:
    if page < 1 or not 1 <= per_page <= 500:
        raise InvalidInputError("page starts at 1; per_page is 1 to 500", field="per_page")
    with read_connection(engine) as conn:
        store.load(conn, campaign_id)
        rows, total = campaign_rows.held_rows(conn, campaign_id, offset=(page - 1) * per_page, limit=per_page)
        people = people_by_id(conn, [r["person_id"] for r in rows])
    held = tuple(
        HeldRow(
            message_id=int(r["id"]),
            person_id=int(r["person_id"]),
            name=_name(people.get(int(r["person_id"]))),
            reason=r["hold_reason"] or "",
            reason_text=describe_reason(r["hold_reason"]),
            channel=r["channels"][r["plan_index"]] if r["channels"] else None,
            available_at=r["available_at"],
        )
        for r in rows
    )
    return HeldPage(campaign_id, held, total, page, per_page)
