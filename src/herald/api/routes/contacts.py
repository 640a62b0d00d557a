"""Contact routes: create/update, read, search, consent, erase, merge and unmerge, export."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import FileResponse
from pydantic import AfterValidator, Field, WithJsonSchema

from herald.api.deps import RuntimeDep, WorkDep
from herald.api.errors import error_responses
from herald.contacts import dedupe, erase, export, service
from herald.core.channels import CONSENT_CHANNELS, Channel
from herald.core.inputs import INT64_MAX, Id, InputModel, Text

router = APIRouter(tags=["contacts"])


class ContactIn(InputModel):
    emails: list[str] = Field(default_factory=list, max_length=20)
    phones: list[str] = Field(default_factory=list, max_length=20)
    handles: list[str] = Field(default_factory=list, max_length=20)
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=300)
    country: str | None = Field(None, min_length=2, max_length=2)
    locale: str | None = Field(None, max_length=35)
    timezone: str | None = Field(None, max_length=64)
    attributes: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    consent: dict[str, Literal["subscribed", "unsubscribed"]] = Field(
        default_factory=dict,
        description="channel (or channel:purpose) → state; never re-subscribes an opt-out",
    )


def _consent_channel(channel: Channel) -> str:
    if channel not in CONSENT_CHANNELS:
        raise ValueError(f"consent is recorded for {', '.join(CONSENT_CHANNELS)} only")
    return channel.value


ConsentChannel = Annotated[
    Channel, AfterValidator(_consent_channel), WithJsonSchema({"type": "string", "enum": list(CONSENT_CHANNELS)})
]


class ConsentIn(InputModel):
    channel: ConsentChannel
    purpose: Literal["marketing", "transactional", "all"] = "marketing"
    kind: Literal["subscribed", "unsubscribed", "bounced", "complained", "suppressed"]
    explicit: bool = Field(
        False, description="The person explicitly asked; the only way to re-subscribe after an opt-out."
    )
    note: str | None = Field(None, max_length=1000)


class LockIn(InputModel):
    fields: list[str] = Field(..., min_length=1, description="Fields imports and merges may no longer change.")


class MergeIn(InputModel):
    survivor_id: Id
    merged_id: Id
    reason: str = Field("merged via API", max_length=500)


@router.post("/contacts", status_code=201, responses=error_responses(409))
def upsert_contact(body: ContactIn, runtime: RuntimeDep) -> dict[str, Any]:
    fields = body.model_dump(exclude={"emails", "phones", "handles", "consent"}, exclude_none=True)
    data = service.ContactInput(
        emails=body.emails, phones=body.phones, handles=body.handles, fields=fields, consent=dict(body.consent)
    )
    person_id, action = service.upsert_contact(
        runtime.engine, runtime.clock, data, default_region=runtime.settings.default_region
    )
    return {"id": person_id, "action": action}


@router.get("/contacts")
def search_contacts(
    runtime: RuntimeDep, q: Text = "", limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=INT64_MAX)
) -> dict[str, Any]:
    total, rows = service.search_contacts(runtime.engine, q, limit=limit, offset=offset)
    return {"total": total, "limit": limit, "offset": offset, "contacts": rows}


@router.get("/contacts/duplicates", deprecated=True)
def duplicates(runtime: RuntimeDep, threshold: float = Query(88.0, ge=50, le=100)) -> dict[str, Any]:
    """Scan, then the first 200 open suggestions; use `POST /api/duplicates/scan` and `GET /api/duplicates`."""
    dedupe.compute_suggestions(runtime.engine, runtime.clock, threshold)
    listing = dedupe.list_suggestions(runtime.engine, per_page=200)
    return {"total": listing.total, "suggestions": [dataclasses.asdict(s) for s in listing.items]}


@router.get("/contacts/{person_id}", responses=error_responses(404))
def get_contact(person_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    return service.contact_detail(runtime.engine, person_id)


@router.post("/contacts/{person_id}/consent", status_code=201, responses=error_responses(404, 409))
def add_consent(person_id: Id, body: ConsentIn, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        service.record_consent(
            uow,
            person_id,
            channel=body.channel,
            purpose=body.purpose,
            kind=body.kind,
            explicit=body.explicit,
            source="api",
            note=body.note,
        )
    consent: dict[str, Any] = service.contact_detail(work.runtime.engine, person_id)["consent"]
    return consent


@router.post("/contacts/{person_id}/locks", responses=error_responses(404, 409))
def lock_fields(person_id: Id, body: LockIn, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        service.lock_fields(uow, person_id, body.fields)
    detail = service.contact_detail(work.runtime.engine, person_id)
    return {"id": person_id, "locked_fields": detail["locked_fields"]}


@router.delete("/contacts/{person_id}", responses=error_responses(404, 409))
def erase_contact(person_id: Id, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return erase.erase_person(uow, person_id)


@router.post("/merges", status_code=201, responses=error_responses(404, 409))
def merge(body: MergeIn, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        merge_id = service.merge_contacts(uow, body.survivor_id, body.merged_id, reason=body.reason)
    return {"id": merge_id, "survivor_id": body.survivor_id, "merged_id": body.merged_id}


@router.get("/merges")
def list_merges(runtime: RuntimeDep) -> dict[str, Any]:
    return {"merges": service.list_merges(runtime.engine)}


@router.post("/merges/{merge_id}/undo", responses=error_responses(404, 409))
def unmerge(merge_id: Id, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return service.unmerge_contacts(uow, merge_id)


@router.get("/exports/contacts.csv", response_class=FileResponse)
def export_contacts(work: WorkDep, background: BackgroundTasks, with_sources: bool = False) -> FileResponse:
    handle = tempfile.NamedTemporaryFile(suffix=".csv", delete=False)  # noqa: SIM115 - removed after sending
    handle.close()
    path = Path(handle.name)
    kind = "sources" if with_sources else "people"
    runtime = work.runtime
    try:
        export.export_contacts(runtime.engine, runtime.clock, work.actor, kind, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    background.add_task(path.unlink, missing_ok=True)
    return FileResponse(path, media_type="text/csv", filename=export.EXPORT_FILES[kind], background=background)
