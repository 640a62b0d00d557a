"""Segment routes: saved segments (CRUD), the live count of any definition, and a preview of members."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import Field

from herald.api.deps import RuntimeDep, WorkDep
from herald.api.errors import error_responses
from herald.campaigns import service as campaigns_service
from herald.core.inputs import Id, InputModel
from herald.segments import service

router = APIRouter(tags=["segments"])

DEFINITION_DOC = (
    'A filter tree: groups {"all": [...]}, {"any": [...]}, {"not": {...}} over conditions with a "type": '
    "attribute, tag, identifier, country, timezone, consent, created, import_batch (docs/segments.md). "
    "An invalid tree answers 422 naming the path of the bad node."
)


class SegmentIn(InputModel):
    name: str = Field(..., min_length=1, max_length=service.MAX_NAME)
    definition: dict[str, Any] = Field(..., description=DEFINITION_DOC)


class SegmentUpdate(InputModel):
    name: str | None = Field(None, min_length=1, max_length=service.MAX_NAME)
    definition: dict[str, Any] | None = Field(None, description=DEFINITION_DOC)


class DefinitionIn(InputModel):
    definition: dict[str, Any] = Field(..., description=DEFINITION_DOC)


@router.get("/segments")
def list_segments(runtime: RuntimeDep) -> dict[str, Any]:
    return {"segments": [s.as_dict() for s in service.list_segments(runtime.engine)]}


@router.post("/segments", status_code=201, responses=error_responses(409))
def create_segment(body: SegmentIn, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return service.create_segment(uow, body.name, body.definition).as_dict()


@router.post("/segments/count")
def count_definition(body: DefinitionIn, runtime: RuntimeDep) -> dict[str, int]:
    """How many active people match a definition now (saved or not): the editor's live count."""
    return {"count": service.count_definition(runtime.engine, body.definition, runtime.clock.now())}


@router.get("/segments/{segment_id}", responses=error_responses(404))
def get_segment(segment_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    segment = service.find_segment(runtime.engine, segment_id)
    return segment.as_dict() | {"count": service.count_segment(runtime.engine, segment_id, runtime.clock.now())}


@router.put("/segments/{segment_id}", responses=error_responses(404, 409))
def update_segment(segment_id: Id, body: SegmentUpdate, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return service.update_segment(uow, segment_id, name=body.name, definition=body.definition).as_dict()


@router.delete("/segments/{segment_id}", responses=error_responses(404, 409))
def delete_segment(segment_id: Id, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        campaigns_service.delete_segment(uow, segment_id)
    return {"id": segment_id, "deleted": True}


@router.get("/segments/{segment_id}/preview", responses=error_responses(404))
def preview_segment(
    segment_id: Id, runtime: RuntimeDep, limit: int = Query(20, ge=1, le=service.MAX_PREVIEW)
) -> dict[str, Any]:
    """The first matching people by id: id, names, an e-mail address, country and time zone."""
    people = service.preview_segment(runtime.engine, segment_id, runtime.clock.now(), limit=limit)
    return {"segment_id": segment_id, "limit": limit, "people": people}
