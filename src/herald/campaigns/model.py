"""What a campaign is: its statuses, its schedule (now, at an instant, at a local time) and the frozen row type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from herald.core.channels import CHANNELS, MESSAGE_CLASSES
from herald.core.errors import ConflictError, HeraldError, InvalidInputError


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    LAUNCHING = "launching"  # the launch job is freezing and planning the audience
    RUNNING = "running"  # planned; the worker is sending
    PAUSED = "paused"
    CANCELLED = "cancelled"  # final
    FINISHED = "finished"  # final: nothing left to send


STATUSES = tuple(s.value for s in CampaignStatus)
FINAL = (CampaignStatus.CANCELLED, CampaignStatus.FINISHED)
ScheduleKind = Literal["now", "at", "local_time"]
MAX_SPREAD_MINUTES = 7 * 24 * 60
MAX_SEND_RATE = 1_000_000  # per minute


class CampaignStateError(ConflictError):
    """The campaign is not in a state that allows this action (e.g. editing after launch)."""

    code = "campaign_state"


class SegmentInUseError(ConflictError):
    """A saved segment a campaign launches from (or adds newcomers from) cannot be deleted."""

    code = "segment_in_use"


class CampaignNotFoundError(HeraldError):
    code = "campaign_not_found"
    http_status = 404


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a campaign's messages become due, before quiet hours and caps.

    `now`: at launch. `at`: one instant for everyone. `local_time`: `time` on `date` in each recipient's own
    zone (an instant already past at launch means now). `spread_minutes` spreads each person's start over a
    window, deterministically per person.
    """

    kind: ScheduleKind = "now"
    at: dt.datetime | None = None
    date: dt.date | None = None
    time: dt.time | None = None
    spread_minutes: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.at is not None:
            data["at"] = self.at.astimezone(dt.UTC).isoformat()
        if self.date is not None:
            data["date"] = self.date.isoformat()
        if self.time is not None:
            data["time"] = self.time.strftime("%H:%M")
        if self.spread_minutes:
            data["spread_minutes"] = self.spread_minutes
        return data

    def describe(self) -> str:
        spread = f", spread over {self.spread_minutes} min" if self.spread_minutes else ""
        if self.kind == "at" and self.at is not None:
            return f"at {self.at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC{spread}"
        if self.kind == "local_time" and self.date is not None and self.time is not None:
            return f"{self.date.isoformat()} {self.time:%H:%M} in each recipient's time zone{spread}"
        return f"now{spread}"


def _bad(message: str, field: str) -> InvalidInputError:
    return InvalidInputError(message, field=field)


def parse_schedule(data: Mapping[str, Any] | None) -> Schedule:
    """A schedule from its JSON form; raises InvalidInputError naming the bad field."""
    if data is None:
        return Schedule()
    if not isinstance(data, Mapping):
        raise _bad("schedule must be an object", "schedule")
    unknown = sorted(set(data) - {"kind", "at", "date", "time", "spread_minutes"})
    if unknown:
        raise _bad(f"unknown schedule field(s): {', '.join(unknown)}", f"schedule.{unknown[0]}")
    kind = data.get("kind", "now")
    if kind not in ("now", "at", "local_time"):
        raise _bad("schedule.kind is now, at or local_time", "schedule.kind")
    spread = data.get("spread_minutes", 0) or 0
    if isinstance(spread, bool) or not isinstance(spread, int) or not 0 <= spread <= MAX_SPREAD_MINUTES:
        raise _bad(
            f"schedule.spread_minutes is a whole number from 0 to {MAX_SPREAD_MINUTES}", "schedule.spread_minutes"
        )
    if kind == "now":
        return Schedule("now", spread_minutes=spread)
    if kind == "at":
        return Schedule("at", at=_instant(data.get("at")), spread_minutes=spread)
    return Schedule("local_time", date=_date(data.get("date")), time=_time(data.get("time")), spread_minutes=spread)


def _instant(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        try:
            parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise _bad(
                "schedule.at is an ISO 8601 instant with its zone, e.g. 2026-12-24T09:00:00Z", "schedule.at"
            ) from exc
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise _bad("schedule.at needs a time zone (e.g. 2026-12-24T09:00:00Z)", "schedule.at")
    return parsed.astimezone(dt.UTC)


def _date(value: Any) -> dt.date:
    try:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise _bad("schedule.date is a date, e.g. 2026-12-24", "schedule.date") from exc


def _time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    text = str(value)
    try:
        hours, minutes = text.split(":")
        if len(hours) != 2 or len(minutes) != 2:
            raise ValueError(text)
        return dt.time(int(hours), int(minutes))
    except ValueError as exc:
        raise _bad("schedule.time is HH:MM (24-hour local time), e.g. 09:30", "schedule.time") from exc


def check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    plan = tuple(channels)
    unknown = [c for c in plan if c not in CHANNELS or c == "webhook"]
    if not plan or unknown or len(set(plan)) != len(plan):
        allowed = ", ".join(c for c in CHANNELS if c != "webhook")
        raise _bad(f"channels is an ordered list of distinct channels from: {allowed}", "channels")
    return plan


def check_message_class(message_class: str) -> str:
    if message_class not in MESSAGE_CLASSES:
        raise _bad(f"message_class is one of {', '.join(MESSAGE_CLASSES)}", "message_class")
    return message_class


def check_send_rate(rate: int | None) -> int | None:
    if rate is not None and (isinstance(rate, bool) or not 1 <= rate <= MAX_SEND_RATE):
        raise _bad(f"send_rate is messages per minute, 1 to {MAX_SEND_RATE}", "send_rate")
    return rate


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    status: CampaignStatus
    template_id: str
    template_version: int | None
    segment_id: int
    channels: tuple[str, ...]
    message_class: str
    schedule: Schedule
    send_rate: int | None
    job_id: int | None
    recipients: int
    created_at: dt.datetime
    updated_at: dt.datetime
    launched_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    audience: Mapping[str, Any] | None = None  # the segment definition frozen at launch

    @property
    def message_key(self) -> str:
        """One ledger row per person per campaign: the (person, key) unique constraint makes a second impossible."""
        return message_key(self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "template_id": self.template_id,
            "template_version": self.template_version,
            "segment_id": self.segment_id,
            "channels": list(self.channels),
            "message_class": self.message_class,
            "schedule": self.schedule.to_json(),
            "send_rate": self.send_rate,
            "job_id": self.job_id,
            "recipients": self.recipients,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "launched_at": self.launched_at.isoformat() if self.launched_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def message_key(campaign_id: int) -> str:
    return f"campaign:{campaign_id}"
