"""Segment pages: the list, and an editor with a live count and preview (htmx, debounced) as you type."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from herald.campaigns import service as campaigns_service
from herald.campaigns.model import SegmentInUseError
from herald.core.errors import HeraldError, InvalidInputError, NotFoundError
from herald.core.inputs import Id, Text
from herald.segments import service
from herald.segments.audience import ATTRIBUTE_OPS, CONDITION_TYPES
from herald.web.contacts_views import StaffDep, not_found
from herald.web.deps import CSRF, begin, get_runtime
from herald.web.render import redirect, render

router = APIRouter(prefix="/segments")
PREVIEW = 20
MAX_DEFINITION_CHARS = 100_000

NOTICES = {"created": "Segment saved.", "saved": "Segment saved.", "deleted": "Segment deleted."}
EXAMPLE = {"all": [{"type": "consent", "channel": "email"}, {"type": "country", "in": ["FR", "DE"]}]}

DefinitionField = Annotated[Text, Form(max_length=MAX_DEFINITION_CHARS)]


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def _parse_json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
    if not isinstance(data, dict):
        raise InvalidInputError("The definition is a JSON object: a group (all, any, not) or a condition.")
    return data


@router.get("")
def segments_page(request: Request, signed_in: StaffDep, notice: Text = "") -> Response:
    found = service.list_segments(get_runtime(request).engine)
    rows = [{"segment": s, "summary": json.dumps(s.definition.as_data())[:160]} for s in found]
    return render(request, "segments.html", {"title": "Segments", "rows": rows, "notice": NOTICES.get(notice)})


def _editor(
    request: Request,
    *,
    segment_id: int | None,
    name: str,
    definition: str,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "title": "New segment" if segment_id is None else f"Segment {name}",
        "segment_id": segment_id,
        "name": name,
        "definition": definition,
        "error": error,
        "notice": notice,
        "condition_types": CONDITION_TYPES,
        "attribute_ops": ATTRIBUTE_OPS,
        "builder_error": None,
    }
    return render(request, "segment_edit.html", context, status_code=status_code)


@router.get("/new")
def new_segment(request: Request, signed_in: StaffDep) -> Response:
    return _editor(request, segment_id=None, name="", definition=_pretty(EXAMPLE))


@router.post("", dependencies=CSRF)
def create_segment(
    request: Request, signed_in: StaffDep, name: Annotated[Text, Form(max_length=200)], definition: DefinitionField
) -> Response:
    try:
        data = _parse_json(definition)
        with begin(request, signed_in) as uow:
            segment = service.create_segment(uow, name, data)
    except HeraldError as exc:
        return _editor(
            request, segment_id=None, name=name, definition=definition, error=exc.message, status_code=exc.http_status
        )
    return redirect(request, f"/segments/{segment.id}?notice=created")


# /live and /builder come before /{segment_id}, which would otherwise take them (and answer 422).
@router.post("/live", dependencies=CSRF)
def live(request: Request, signed_in: StaffDep, definition: DefinitionField) -> Response:
    """The editor's live panel: the count now and the first people, or why the definition is invalid."""
    runtime = get_runtime(request)
    context: dict[str, Any] = {"count": None, "people": [], "error": None}
    try:
        parsed = _parse_json(definition)
        now = runtime.clock.now()
        context["count"] = service.count_definition(runtime.engine, parsed, now)
        context["people"] = service.preview_definition(runtime.engine, parsed, now, limit=PREVIEW)
    except InvalidInputError as exc:
        context["error"] = exc.message
    # Always 200: htmx swaps the panel either way, and an invalid tree is a normal state while typing.
    return render(request, "_segment_live.html", context)


def _condition(form: dict[str, str]) -> dict[str, Any]:
    """One condition from the builder's fields (the parser checks it; this only shapes it)."""
    kind = form.get("type", "")
    value = form.get("value", "").strip()
    if kind == "attribute":
        cond: dict[str, Any] = {"type": kind, "name": form.get("name", "").strip(), "op": form.get("op", "equals")}
        if cond["op"] not in ("exists", "missing"):
            cond["value"] = value
        return cond
    if kind == "tag":
        return {"type": kind, "tag": value, "op": "lacks" if form.get("negate") else "has"}
    if kind == "identifier":
        return {"type": kind, "kind": value or "email", "op": "absent" if form.get("negate") else "present"}
    if kind in ("country", "timezone"):
        return {"type": kind, "in": [v.strip() for v in value.split(",") if v.strip()]}
    if kind == "consent":
        return {"type": kind, "channel": value or "email", "allowed": not form.get("negate")}
    if kind == "created":
        return {"type": kind, "op": "within_days", "days": int(value) if value.isdigit() else value}
    if kind == "import_batch":
        return {"type": kind, "batch_id": int(value) if value.isdigit() else value}
    return {"type": kind}


@router.post("/builder", dependencies=CSRF)
async def add_condition(request: Request, signed_in: StaffDep) -> Response:
    """The condition builder: append one condition to the top-level "all" and hand back the textarea."""
    form = {k: str(v) for k, v in (await request.form()).items()}
    text = form.get("definition", "")[:MAX_DEFINITION_CHARS]
    error = None
    try:
        data = _parse_json(text) if text.strip() else {"all": []}
        condition = _condition(form)
        service.parse_definition(condition)  # a bad condition is refused here, with its reason
        merged = data if set(data) == {"all"} and isinstance(data["all"], list) else {"all": [data]}
        merged["all"].append(condition)
        service.parse_definition(merged)
        text = _pretty(merged)
    except (InvalidInputError, ValueError) as exc:
        error = exc.message if isinstance(exc, InvalidInputError) else str(exc)
    return render(request, "_segment_definition.html", {"definition": text, "builder_error": error})


@router.get("/{segment_id}")
def edit_segment(request: Request, signed_in: StaffDep, segment_id: Id, notice: Text = "") -> Response:
    try:
        segment = service.find_segment(get_runtime(request).engine, segment_id)
    except NotFoundError as exc:
        return not_found(request, exc.message)
    return _editor(
        request,
        segment_id=segment.id,
        name=segment.name,
        definition=_pretty(segment.definition.as_data()),
        notice=NOTICES.get(notice),
    )


@router.post("/{segment_id}", dependencies=CSRF)
def save_segment(
    request: Request,
    signed_in: StaffDep,
    segment_id: Id,
    name: Annotated[Text, Form(max_length=200)],
    definition: DefinitionField,
) -> Response:
    try:
        data = _parse_json(definition)
        with begin(request, signed_in) as uow:
            service.update_segment(uow, segment_id, name=name, definition=data)
    except NotFoundError as exc:
        return not_found(request, exc.message)
    except HeraldError as exc:
        return _editor(
            request,
            segment_id=segment_id,
            name=name,
            definition=definition,
            error=exc.message,
            status_code=exc.http_status,
        )
    return redirect(request, f"/segments/{segment_id}?notice=saved")


@router.post("/{segment_id}/delete", dependencies=CSRF)
def delete_segment(request: Request, signed_in: StaffDep, segment_id: Id) -> Response:
    try:
        with begin(request, signed_in) as uow:
            campaigns_service.delete_segment(uow, segment_id)
    except NotFoundError as exc:
        return not_found(request, exc.message)
    except SegmentInUseError as exc:
        segment = service.find_segment(get_runtime(request).engine, segment_id)
        return _editor(
            request,
            segment_id=segment.id,
            name=segment.name,
            definition=_pretty(segment.definition.as_data()),
            error=exc.message,
            status_code=exc.http_status,
        )
    return redirect(request, "/segments?notice=deleted")
