"""The campaign draft form: what it holds as typed, read from a request, and turned into the service's fields."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from fastapi import Form

from herald.campaigns.service import Campaign
from herald.core.errors import HeraldError
from herald.core.inputs import Text
from herald.web.render import FormErrors

FormStr = Annotated[Text, Form()]
FormList = Annotated[list[Text], Form()]


@dataclass(frozen=True)
class DraftForm:
    """The editor's fields as typed (text), so a refused form comes back exactly as it was sent."""

    name: str = ""
    segment_id: str = ""
    template_id: str = ""
    template_version: str = ""  # empty: the template's latest version
    channels: list[str] = field(default_factory=lambda: ["email"])  # the plan, in failover order
    message_class: str = "marketing"
    schedule_kind: str = "now"  # now | at | local_time
    at: str = ""  # datetime-local, read as UTC
    date: str = ""
    time: str = ""
    spread_minutes: str = ""
    send_rate: str = ""

    @classmethod
    def of(cls, campaign: Campaign) -> DraftForm:
        schedule = campaign.schedule
        return cls(
            name=campaign.name,
            segment_id=str(campaign.segment_id),
            template_id=campaign.template_id,
            template_version=str(campaign.template_version or ""),
            channels=list(campaign.channels),
            message_class=campaign.message_class,
            schedule_kind=schedule.kind,
            at=schedule.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M") if schedule.at else "",
            date=schedule.date.isoformat() if schedule.date else "",
            time=schedule.time.strftime("%H:%M") if schedule.time else "",
            spread_minutes=str(schedule.spread_minutes or ""),
            send_rate=str(campaign.send_rate or ""),
        )

    def values(self) -> dict[str, Any]:
        return asdict(self)

    def fields(self) -> tuple[dict[str, Any], FormErrors]:
        """The service's fields, with the errors the form itself can tell (the service checks the rest)."""
        errors = FormErrors()

        def number(text: str, name: str, label: str) -> int | None:
            text = text.strip()
            if not text:
                return None
            if not text.isdecimal() or not 0 < int(text) < 2**63:
                errors.put(name, f"{label} is a whole number.")
                return None
            return int(text)

        schedule: dict[str, Any] = {"kind": self.schedule_kind or "now"}
        if self.schedule_kind == "at":
            # A datetime-local field has no zone: the form says it is UTC.
            schedule["at"] = f"{self.at}:00+00:00" if len(self.at) == 16 else self.at
        elif self.schedule_kind == "local_time":
            schedule["date"], schedule["time"] = self.date, self.time
        spread = number(self.spread_minutes, "spread_minutes", "The spread")
        if spread:
            schedule["spread_minutes"] = spread
        fields = {
            "name": self.name,
            "segment_id": number(self.segment_id, "segment_id", "The segment"),
            "template_id": self.template_id,
            "template_version": number(self.template_version, "template_version", "The version"),
            "channels": list(self.channels),
            "message_class": self.message_class,
            "schedule": schedule,
            "send_rate": number(self.send_rate, "send_rate", "The send rate"),
        }
        if fields["segment_id"] is None and "segment_id" not in errors:
            errors.put("segment_id", "Choose the segment to send to.")
        if not self.template_id:
            errors.put("template_id", "Choose a template.")
        return fields, errors


def read_form(
    name: FormStr = "",
    segment_id: FormStr = "",
    template_id: FormStr = "",
    template_version: FormStr = "",
    channel: FormList = [],  # noqa: B006 (FastAPI copies defaults per request)
    message_class: FormStr = "marketing",
    schedule_kind: FormStr = "now",
    at: FormStr = "",
    date: FormStr = "",
    time: FormStr = "",
    spread_minutes: FormStr = "",
    send_rate: FormStr = "",
) -> DraftForm:
    """The posted draft (a dependency); the channel selects left on "—" are dropped, repeats kept once."""
    return DraftForm(
        name=name,
        segment_id=segment_id,
        template_id=template_id,
        template_version=template_version,
        channels=[c for c in dict.fromkeys(c.strip() for c in channel) if c],
        message_class=message_class,
        schedule_kind=schedule_kind,
        at=at,
        date=date,
        time=time,
        spread_minutes=spread_minutes,
        send_rate=send_rate,
    )


def field_of(exc: HeraldError) -> str:
    """The form field a service error names (schedule.at → at), so the message shows beside it."""
    name = str(exc.fields.get("field") or "")
    if name.startswith("schedule."):
        part = name.removeprefix("schedule.")
        return "schedule_kind" if part == "kind" else part
    return "schedule_kind" if name == "schedule" else name
