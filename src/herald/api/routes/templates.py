"""Stored template routes: list, save a new immutable version, every version of one, preview for a person."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from herald.api.deps import RuntimeDep, WorkDep
from herald.api.errors import error_responses
from herald.core.channels import describe_part_names
from herald.core.inputs import Id, InputModel, Text
from herald.delivery import preview
from herald.templates import store

router = APIRouter(tags=["templates"])

TEMPLATE_ID = r"^[A-Za-z0-9._-]+$"
PARTS_DESCRIPTION = f"part name → source; parts are named {describe_part_names()}"
VARIABLES_DESCRIPTION = "path → fallback; null means: hold the message when missing"


class TemplateIn(InputModel):
    id: str = Field(..., min_length=1, max_length=200, pattern=TEMPLATE_ID)
    parts: dict[str, str] = Field(..., min_length=1, description=PARTS_DESCRIPTION)
    variables: dict[str, str | None] = Field(default_factory=dict, description=VARIABLES_DESCRIPTION)


class PreviewIn(InputModel):
    person_id: Id
    version: Id | None = Field(None, description="a stored version (default: the latest)")
    parts: dict[str, str] | None = Field(
        None, min_length=1, description=f"an unsaved draft to render instead; {PARTS_DESCRIPTION}"
    )
    variables: dict[str, str | None] | None = Field(
        None, description=f"the draft's fallbacks ({VARIABLES_DESCRIPTION}); default: the stored version's"
    )


@router.get("/templates")
def list_templates(runtime: RuntimeDep) -> dict[str, Any]:
    return {"templates": store.list_templates(runtime.engine)}


@router.post("/templates", status_code=201, responses=error_responses(422))
def create_template(body: TemplateIn, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return store.save_version(uow, body.id, body.parts, body.variables)


@router.get("/templates/{template_id}", responses=error_responses(404))
def get_template(template_id: Text, runtime: RuntimeDep) -> dict[str, Any]:
    return {"id": template_id, "versions": store.template_versions(runtime.engine, template_id)}


@router.post("/templates/{template_id}/preview", responses=error_responses(404, 422))
def preview_template(template_id: Text, body: PreviewIn, runtime: RuntimeDep) -> dict[str, Any]:
    """The template rendered for one person with the values the planner uses, or why it would be held
    (the hold reason and every missing variable). Nothing is stored or sent."""
    result = preview.preview_template(
        runtime.engine, template_id, body.person_id, version=body.version, parts=body.parts, variables=body.variables
    )
    return result.as_dict()
