"""Stored template routes: POST a new immutable version, GET every version of one template."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from herald.api.deps import RuntimeDep
from herald.api.errors import error_responses
from herald.core.channels import describe_part_names
from herald.core.inputs import InputModel, Text
from herald.templates import store

router = APIRouter(tags=["templates"])


class TemplateIn(InputModel):
    id: str = Field(..., min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    parts: dict[str, str] = Field(
        ..., min_length=1, description=f"part name → source; parts are named {describe_part_names()}"
    )
    variables: dict[str, str | None] = Field(
        default_factory=dict, description="path → fallback; null means: hold the message when missing"
    )


@router.post("/templates", status_code=201)
def create_template(body: TemplateIn, runtime: RuntimeDep) -> dict[str, Any]:
    return store.create_template(runtime.engine, runtime.clock, body.id, body.parts, body.variables)


@router.get("/templates/{template_id}", responses=error_responses(404))
def get_template(template_id: Text, runtime: RuntimeDep) -> dict[str, Any]:
    return {"id": template_id, "versions": store.template_versions(runtime.engine, template_id)}
