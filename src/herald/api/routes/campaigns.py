"""Campaign routes: create, list, read, edit a draft, launch, the controls, progress, simulation, coverage, held."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from herald.api.deps import RuntimeDep, WorkDep
from herald.api.errors import error_responses
from herald.campaigns import service
from herald.campaigns.model import STATUSES
from herald.core.channels import Channel, MessageClass
from herald.core.inputs import Id, InputModel, Text

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

SCHEDULE_HELP = (
    '{"kind": "now"} | {"kind": "at", "at": "2026-12-24T09:00:00Z"} | '
    '{"kind": "local_time", "date": "2026-12-24", "time": "09:00"}; each may add "spread_minutes"'
)


class ScheduleIn(InputModel):
    kind: Literal["now", "at", "local_time"] = "now"
    at: Text | None = Field(None, max_length=64, description="kind at: an ISO 8601 instant with its zone")
    date: Text | None = Field(None, max_length=10, description="kind local_time: the date (YYYY-MM-DD)")
    time: Text | None = Field(None, max_length=5, description="kind local_time: HH:MM in each recipient's zone")
    spread_minutes: int = Field(0, ge=0, le=7 * 24 * 60, description="spread each start over this window")


class CampaignIn(InputModel):
    name: Text = Field(..., min_length=1, max_length=200)
    template_id: Text = Field(..., min_length=1, max_length=200)
    template_version: int | None = Field(None, ge=1, le=2**31 - 1, description="default: the latest, pinned now")
    segment_id: Id
    channels: list[Channel] = Field(..., min_length=1, max_length=4, description="the ordered channel plan")
    message_class: MessageClass = MessageClass.MARKETING
    schedule: ScheduleIn = Field(default_factory=ScheduleIn, description=SCHEDULE_HELP)
    send_rate: int | None = Field(None, ge=1, le=1_000_000, description="messages per minute")


class CampaignPatch(InputModel):
    name: Text | None = Field(None, min_length=1, max_length=200)
    template_id: Text | None = Field(None, min_length=1, max_length=200)
    template_version: int | None = Field(None, ge=1, le=2**31 - 1)
    segment_id: Id | None = None
    channels: list[Channel] | None = Field(None, min_length=1, max_length=4)
    message_class: MessageClass | None = None
    schedule: ScheduleIn | None = Field(None, description=SCHEDULE_HELP)
    send_rate: int | None = Field(None, ge=1, le=1_000_000)


def _schedule(schedule: ScheduleIn) -> dict[str, Any]:
    return schedule.model_dump(exclude_none=True)


@router.post("", status_code=201, responses=error_responses(404, 422))
def create_campaign(body: CampaignIn, work: WorkDep) -> dict[str, Any]:
    """A draft campaign; the template version is pinned now (the latest unless given)."""
    with work.begin() as uow:
        campaign = service.create_campaign(
            uow,
            name=body.name,
            template_id=body.template_id,
            template_version=body.template_version,
            segment_id=body.segment_id,
            channels=[c.value for c in body.channels],
            message_class=body.message_class.value,
            schedule=_schedule(body.schedule),
            send_rate=body.send_rate,
        )
    return campaign.to_json()


@router.get("")
def list_campaigns(
    runtime: RuntimeDep,
    status: Annotated[Text | None, Query(max_length=16, description=", ".join(STATUSES))] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> dict[str, Any]:
    rows, total = service.list_campaigns(runtime.engine, status=status, limit=limit, offset=offset)
    return {"total": total, "campaigns": [c.to_json() for c in rows]}


@router.get("/{campaign_id}", responses=error_responses(404))
def get_campaign(campaign_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    return service.get_campaign(runtime.engine, campaign_id).to_json()


@router.patch("/{campaign_id}", responses=error_responses(404, 409, 422))
def update_campaign(campaign_id: Id, body: CampaignPatch, work: WorkDep) -> dict[str, Any]:
    """Change a draft; 409 once it has been launched."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    if body.schedule is not None:
        changes["schedule"] = _schedule(body.schedule)
    with work.begin() as uow:
        return service.update_campaign(uow, campaign_id, changes).to_json()


@router.post("/{campaign_id}/launch", status_code=202, responses=error_responses(404, 409))
def launch_campaign(campaign_id: Id, work: WorkDep) -> dict[str, Any]:
    """Queue the launch job: it freezes the audience and plans it in chunks. Follow it at /api/jobs/{job_id}."""
    with work.begin() as uow:
        job_id = service.launch_campaign(uow, campaign_id)
    return {"campaign_id": campaign_id, "job_id": job_id, "job_url": f"/api/jobs/{job_id}"}


@router.post("/{campaign_id}/newcomers", status_code=202, responses=error_responses(404, 409))
def send_to_newcomers(campaign_id: Id, work: WorkDep) -> dict[str, Any]:
    """People in the segment now who are not in the campaign yet: added and planned once, by a job."""
    with work.begin() as uow:
        job_id = service.send_to_newcomers(uow, campaign_id)
    return {"campaign_id": campaign_id, "job_id": job_id, "job_url": f"/api/jobs/{job_id}"}


@router.post("/{campaign_id}/pause", responses=error_responses(404, 409))
def pause_campaign(campaign_id: Id, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return service.pause_campaign(uow, campaign_id).to_json()


@router.post("/{campaign_id}/resume", responses=error_responses(404, 409))
def resume_campaign(campaign_id: Id, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return service.resume_campaign(uow, campaign_id).to_json()


@router.post("/{campaign_id}/cancel", responses=error_responses(404, 409))
def cancel_campaign(campaign_id: Id, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return service.cancel_campaign(uow, campaign_id).to_json()


@router.post("/{campaign_id}/retry-failed", responses=error_responses(404, 409))
def retry_failed(campaign_id: Id, work: WorkDep) -> dict[str, Any]:
    """Queue again the failed messages no provider accepted; never a second send."""
    with work.begin() as uow:
        return service.retry_failed(uow, campaign_id).to_json()


@router.get("/{campaign_id}/progress", responses=error_responses(404))
def campaign_progress(campaign_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    """Ledger rows by status, hold reason and channel, and the launch job's progress."""
    return service.campaign_progress(runtime.engine, campaign_id).to_json()


@router.get("/{campaign_id}/simulation", responses=error_responses(404, 422))
def simulate_campaign(
    campaign_id: Id,
    runtime: RuntimeDep,
    page: Annotated[int, Query(ge=1, le=2**31)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """What a launch now would do, per recipient (this page) and in totals (everyone); nothing is written."""
    return service.simulate_campaign(runtime, campaign_id, page=page, per_page=per_page).to_json()


@router.get("/{campaign_id}/coverage", responses=error_responses(404))
def campaign_coverage(campaign_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    """Per template variable: how many people in the audience lack it, and whether they get a fallback."""
    return service.campaign_coverage(runtime, campaign_id).to_json()


@router.get("/{campaign_id}/held", responses=error_responses(404, 422))
def held_recipients(
    campaign_id: Id,
    runtime: RuntimeDep,
    page: Annotated[int, Query(ge=1, le=2**31)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return service.held_recipients(runtime.engine, campaign_id, page=page, per_page=per_page).to_json()
