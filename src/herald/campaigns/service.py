"""The campaigns slice's public functions: writes take a unit of work, reads the engine or runtime.

Entry points (API routes, CLI commands, web views) call these and nothing else of the slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.campaigns import controls, coverage, launch, progress, simulate, store
from herald.campaigns.coverage import Coverage
from herald.campaigns.model import (
    STATUSES,
    Campaign,
    CampaignStateError,
    CampaignStatus,
    SegmentInUseError,
    check_channels,
    check_message_class,
    check_send_rate,
    parse_schedule,
)
from herald.campaigns.progress import HeldPage, Progress
from herald.campaigns.simulate import SimulationPage
from herald.core.errors import InvalidInputError
from herald.db.runtime import Runtime
from herald.db.unit_of_work import UnitOfWork
from herald.segments import service as segments_service
from herald.segments.service import get_segment
from herald.templates.store import load_template

__all__ = [
    "Campaign",
    "ControlResult",
    "Coverage",
    "HeldPage",
    "Progress",
    "SimulationPage",
    "campaign_coverage",
    "campaign_progress",
    "cancel_campaign",
    "create_campaign",
    "get_campaign",
    "held_recipients",
    "launch_campaign",
    "list_campaigns",
    "pause_campaign",
    "resume_campaign",
    "retry_failed",
    "send_to_newcomers",
    "simulate_campaign",
    "update_campaign",
]

EDITABLE = (
    "name",
    "template_id",
    "template_version",
    "segment_id",
    "channels",
    "message_class",
    "schedule",
    "send_rate",
)


@dataclass(frozen=True, slots=True)
class ControlResult:
    """A control's effect: the campaign after it and how many ledger rows it moved."""

    campaign: Campaign
    changed: int

    def to_json(self) -> dict[str, Any]:
        return {"campaign": self.campaign.to_json(), "changed": self.changed}


# --- model ---------------------------------------------------------------------------------------------------


def create_campaign(
    uow: UnitOfWork,
    *,
    name: str,
    template_id: str,
    segment_id: int,
    channels: Sequence[str],
    template_version: int | None = None,
    message_class: str = "marketing",
    schedule: Mapping[str, Any] | None = None,
    send_rate: int | None = None,
) -> Campaign:
    """A new draft campaign. The template version is pinned now (its latest unless given): a campaign sends one
    version. Raises InvalidInputError (bad field), NotFoundError (no such template or segment)."""
    values = _checked(
        uow.conn,
        {
            "name": name,
            "template_id": template_id,
            "template_version": template_version,
            "segment_id": segment_id,
            "channels": channels,
            "message_class": message_class,
            "schedule": schedule,
            "send_rate": send_rate,
        },
    )
    campaign_id = store.insert(
        uow.conn,
        {**values, "status": CampaignStatus.DRAFT.value, "created_at": uow.now, "updated_at": uow.now},
    )
    uow.audit("campaign.created", target="campaign", target_id=campaign_id, details={"name": values["name"]})
    return store.load(uow.conn, campaign_id)


def update_campaign(uow: UnitOfWork, campaign_id: int, changes: Mapping[str, Any]) -> Campaign:
    """Change a draft (any of EDITABLE); refused with CampaignStateError once launched."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise InvalidInputError(f"cannot change {', '.join(unknown)}", field=unknown[0])
    row = store.load_row(uow.conn, campaign_id, lock=True)
    if row["status"] != CampaignStatus.DRAFT:
        raise CampaignStateError(f"Campaign {campaign_id} is {row['status']}; only a draft can be edited.")
    merged = {k: row[k] for k in EDITABLE} | dict(changes)
    if "template_id" in changes and "template_version" not in changes:
        merged["template_version"] = None  # a new template: pin its latest
    values = _checked(uow.conn, merged)
    store.update(uow.conn, campaign_id, values, uow.now)
    uow.audit("campaign.updated", target="campaign", target_id=campaign_id, details={"fields": sorted(changes)})
    return store.load(uow.conn, campaign_id)


def _checked(conn: sa.Connection, data: Mapping[str, Any]) -> dict[str, Any]:
    name = str(data["name"] or "").strip()
    if not name or len(name) > 200:
        raise InvalidInputError("name is 1 to 200 characters", field="name")
    template = load_template(conn, str(data["template_id"]), data["template_version"])
    get_segment(conn, int(data["segment_id"]))
    return {
        "name": name,
        "template_id": template.id,
        "template_version": template.version,
        "segment_id": int(data["segment_id"]),
        "channels": list(check_channels(data["channels"])),
        "message_class": check_message_class(str(data["message_class"])),
        "schedule": parse_schedule(data["schedule"]).to_json(),
        "send_rate": check_send_rate(data["send_rate"]),
    }


def get_campaign(engine: sa.Engine, campaign_id: int) -> Campaign:
    """One campaign; CampaignNotFoundError (404) when there is none."""
    with engine.connect() as conn:
        return store.load(conn, campaign_id)


def list_campaigns(
    engine: sa.Engine, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Campaign], int]:
    """Campaigns newest first (one page) and how many there are in all."""
    if status is not None and status not in STATUSES:
        raise InvalidInputError(f"status is one of {', '.join(STATUSES)}", field="status")
    with engine.connect() as conn:
        return store.list_rows(conn, status=status, limit=limit, offset=offset), store.count_rows(conn, status=status)


def delete_segment(uow: UnitOfWork, segment_id: int) -> None:
    """Delete a saved segment unless a campaign refers to it (409 `segment_in_use`, naming them): a draft
    would have nothing to launch and a launched one nothing to add newcomers from."""
    users = store.using_segment(uow.conn, segment_id)
    if users:
        names = ", ".join(f"{name!r} (#{cid})" for cid, name in users[:5]) + (" …" if len(users) > 5 else "")
        raise SegmentInUseError(
            f"Segment {segment_id} is used by {len(users)} campaign(s): {names}.",
            id=segment_id,
            campaigns=[cid for cid, _ in users],
        )
    segments_service.delete_segment(uow, segment_id)


# --- launch and controls ---------------------------------------------------------------------------------------


def launch_campaign(uow: UnitOfWork, campaign_id: int) -> int:
    """Queue the durable launch job (freeze the audience, plan it in chunks); returns the job id.

    Only a draft launches; the campaign is `launching` until the job has planned everyone, then `running`."""
    return launch.start_launch(uow, campaign_id)


def send_to_newcomers(uow: UnitOfWork, campaign_id: int) -> int:
    """People now in the segment but not in the frozen audience are added (origin `newcomers`) and planned once,
    by a launch job; returns its id."""
    return launch.start_newcomers(uow, campaign_id)


def pause_campaign(uow: UnitOfWork, campaign_id: int) -> ControlResult:
    """Hold every row not yet taken (queued, retry_wait, releasable holds) as `paused`; rows sending finish."""
    changed = controls.pause(uow, campaign_id)
    return ControlResult(store.load(uow.conn, campaign_id), changed)


def resume_campaign(uow: UnitOfWork, campaign_id: int) -> ControlResult:
    """Put paused rows back as they were (queued at their planned time, or now if that has passed)."""
    changed = controls.resume(uow, campaign_id)
    return ControlResult(store.load(uow.conn, campaign_id), changed)


def cancel_campaign(uow: UnitOfWork, campaign_id: int) -> ControlResult:
    """Hold everything not yet sent as `cancelled`, for good; rows already sending finish."""
    changed = controls.cancel(uow, campaign_id)
    return ControlResult(store.load(uow.conn, campaign_id), changed)


def retry_failed(uow: UnitOfWork, campaign_id: int) -> ControlResult:
    """Queue again the failed rows whose attempts show that no provider accepted anything (never a second send)."""
    changed = controls.retry_failed(uow, campaign_id)
    return ControlResult(store.load(uow.conn, campaign_id), changed)


# --- reports ---------------------------------------------------------------------------------------------------


def campaign_progress(engine: sa.Engine, campaign_id: int) -> Progress:
    """Ledger rows of the campaign counted by status, hold reason and channel, plus the launch job's progress."""
    return progress.campaign_progress(engine, campaign_id)


def campaigns_progress(engine: sa.Engine, found: Sequence[Campaign]) -> dict[int, Progress]:
    """`campaign_progress` of a page of campaigns, counted in one grouped read."""
    return progress.campaigns_progress(engine, found)


def held_recipients(engine: sa.Engine, campaign_id: int, *, page: int = 1, per_page: int = 50) -> HeldPage:
    """The campaign's held rows (one page), each with its reason in words."""
    return progress.held_recipients(engine, campaign_id, page=page, per_page=per_page)


def simulate_campaign(runtime: Runtime, campaign_id: int, *, page: int = 1, per_page: int = 50) -> SimulationPage:
    """What a launch now would do, with no writes: per recipient the channel, local and UTC send time, or the
    skip/hold reason; totals per reason and channel over the whole audience. Runs the launch's own planning code."""
    return simulate.simulate_campaign(runtime, campaign_id, page=page, per_page=per_page)


def campaign_coverage(runtime: Runtime, campaign_id: int) -> Coverage:
    """The template's coverage report over the segment's people: per variable how many lack it, fallbacks shown."""
    return coverage.campaign_coverage(runtime, campaign_id)
