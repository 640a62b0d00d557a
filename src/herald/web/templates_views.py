"""Templates pages: the list, the editor (parts per channel, fallbacks, version history) and its live preview."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from herald.contacts import service as contacts
from herald.core.channels import PARTS
from herald.core.errors import HeraldError, NotFoundError
from herald.core.inputs import Id, Text
from herald.delivery import preview as previews
from herald.templates import store
from herald.web.deps import CSRF, SignedIn, begin, get_runtime, require_role
from herald.web.render import FormErrors, redirect, render

router = APIRouter(prefix="/templates")

# Templates are what marketing sends: admins and marketers write them (agents read messages, not these).
StaffDep = Annotated[SignedIn, Depends(require_role("admin", "marketer"))]

TEMPLATE_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
CHANNEL_LABELS = {"email": "E-mail", "sms": "SMS", "whatsapp": "WhatsApp", "voice": "Voice"}
PART_LABELS = {"subject": "subject", "text": "text", "html": "HTML", "body": "body"}
SINGLE_LINE = frozenset({"email.subject"})
BLANK_FALLBACK_ROWS = 2
PEOPLE_SHOWN = 20


def _editor_channels(parts: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every channel's part fields (from the one channel vocabulary), plus numbered parts a version has."""
    channels = []
    for channel, fields in PARTS.items():
        names = list(fields.values())
        names += sorted((p for p in parts if p.startswith(f"{channel}.param.")), key=lambda p: int(p.rsplit(".", 1)[1]))
        channels.append(
            {
                "name": channel,
                "label": CHANNEL_LABELS.get(channel, channel),
                "filled": any(parts.get(n) for n in names),
                "parts": [
                    {
                        "name": name,
                        "label": PART_LABELS.get(name.split(".", 1)[1], name.split(".", 1)[1].replace(".", " ")),
                        "value": parts.get(name, ""),
                        "single_line": name in SINGLE_LINE,
                    }
                    for name in names
                ],
            }
        )
    return channels


def _fallback_rows(variables: Mapping[str, str | None]) -> list[dict[str, str]]:
    rows = [{"name": name, "value": "" if value is None else value} for name, value in variables.items()]
    return rows + [{"name": "", "value": ""}] * BLANK_FALLBACK_ROWS


def _people(engine: Any, query: str, chosen: int | None) -> list[dict[str, Any]]:
    """People to preview with: matches of the search (a number also finds that person's id), the chosen first."""
    text = query.strip()
    _, found = contacts.search_contacts(engine, text, limit=PEOPLE_SHOWN)
    ids = [row["id"] for row in found]
    wanted = [int(text)] if text.isdecimal() and 0 < int(text) < 2**63 else []
    if chosen is not None:
        wanted.append(chosen)
    extra = [pid for pid in wanted if pid not in ids]
    names = contacts.display_names(engine, extra + ids)
    extra = [pid for pid in extra if pid in names]  # display_names knows only people that exist
    return [{"id": pid, "label": names.get(pid) or f"Person {pid}"} for pid in dict.fromkeys(extra + ids)]


def _editor(
    request: Request,
    template_id: str | None,
    *,
    parts: Mapping[str, str],
    variables: Mapping[str, str | None],
    versions: list[dict[str, Any]],
    shown_version: int | None,
    errors: FormErrors | None = None,
    notice: str | None = None,
    new_id: str = "",
    status_code: int = 200,
) -> Response:
    engine = get_runtime(request).engine
    people = _people(engine, "", None)
    context = {
        "title": f"Template {template_id}" if template_id else "New template",
        "template_id": template_id,
        "channels": _editor_channels(parts),
        "fallbacks": _fallback_rows(variables),
        "versions": list(reversed(versions)),
        "latest": versions[-1]["version"] if versions else None,
        "shown_version": shown_version,
        "people": people,
        "person": people[0]["id"] if people else None,
        "errors": errors or FormErrors(),
        "notice": notice,
        "new_id": new_id,
    }
    return render(request, "template_edit.html", context, status_code=status_code)


@router.get("")
def templates_page(request: Request, signed_in: StaffDep) -> Response:
    found = store.list_templates(get_runtime(request).engine)
    rows = [
        item | {"channels": sorted({name.split(".", 1)[0] for name in item["parts"]}, key=list(PARTS).index)}
        for item in found
    ]
    return render(request, "templates.html", {"title": "Templates", "templates": rows})


# The new form and the editors' helpers sit one level down ("-/…"): a template id is one path segment, so
# no template (not even one called "new" or "people") can shadow them.
@router.get("/-/new")
def new_template(request: Request, signed_in: StaffDep) -> Response:
    return _editor(request, None, parts={}, variables={}, versions=[], shown_version=None)


@router.get("/-/people")
def people_options(
    request: Request,
    signed_in: StaffDep,
    q: Annotated[Text, Query(max_length=200)] = "",
    person: Annotated[Text, Query(max_length=20)] = "",
) -> Response:
    """The person picker's options for a search (an htmx fragment that replaces the select)."""
    chosen = int(person) if person.isdecimal() and 0 < int(person) < 2**63 else None
    people = _people(get_runtime(request).engine, q, chosen)
    selected = people[0]["id"] if people and chosen is None else chosen
    if q.strip() and people:
        selected = people[0]["id"]  # a search picks its best match, so the preview follows what was typed
    response = render(request, "_person_select.html", {"people": people, "person": selected, "query": q})
    response.headers["HX-Trigger"] = "person-changed"  # the preview re-renders for the newly picked person
    return response


@router.post("/-/preview", dependencies=CSRF)
async def preview_fragment(request: Request, signed_in: StaffDep) -> Response:
    """The live preview of the editor's current (unsaved) parts for the chosen person."""
    form = await request.form()
    template_id = str(form.get("template_id") or form.get("id") or "draft").strip() or "draft"
    parts, variables = _draft(form)
    person = str(form.get("person") or "").strip()
    context: dict[str, Any] = {"result": None, "problem": None, "person_id": None}
    if not person.isdecimal() or not 0 < int(person) < 2**63:
        context["problem"] = "Choose a person to preview with (search by name, e-mail, phone or id)."
    elif not parts:
        context["problem"] = "Write at least one part to see a preview."
    else:
        try:
            result = previews.preview_template(
                get_runtime(request).engine, template_id, int(person), parts=parts, variables=variables
            )
            context["result"] = result.as_dict()
            context["person_id"] = int(person)
        except NotFoundError as exc:
            context["problem"] = exc.message
        except HeraldError as exc:  # a draft that does not compile: say why, in place of the preview
            context["problem"] = exc.message
            context["invalid"] = exc.code
    return render(request, "_template_preview.html", context)


@router.post("/-/new", dependencies=CSRF)
async def create_template(request: Request, signed_in: StaffDep) -> Response:
    form = await request.form()
    template_id = str(form.get("id") or "").strip()
    return _save(request, signed_in, form, template_id, is_new=True)


@router.get("/{template_id}")
def template_page(
    request: Request,
    signed_in: StaffDep,
    template_id: Text,
    version: Annotated[Id | None, Query()] = None,
    saved: Annotated[Id | None, Query()] = None,
) -> Response:
    try:
        versions = store.template_versions(get_runtime(request).engine, template_id)
    except NotFoundError:
        return render(
            request,
            "error.html",
            {"title": "Not found", "message": f"There is no template {template_id!r}."},
            status_code=404,
        )
    shown = next((v for v in versions if v["version"] == version), versions[-1])
    notice = f"Saved as version {saved}." if saved else None
    return _editor(
        request,
        template_id,
        parts=shown["parts"],
        variables=shown["variables"],
        versions=versions,
        shown_version=shown["version"],
        notice=notice,
    )


@router.post("/{template_id}", dependencies=CSRF)
async def save_template(request: Request, signed_in: StaffDep, template_id: Text) -> Response:
    form = await request.form()
    return _save(request, signed_in, form, template_id, is_new=False)


def _draft(form: FormData) -> tuple[dict[str, str], dict[str, str | None]]:
    """Parts (`part:<name>`, blank ones left out) and fallbacks (`fallback_name` / `fallback_value` rows)."""
    parts = {
        key.removeprefix("part:"): str(value)
        for key, value in form.multi_items()
        if key.startswith("part:") and str(value).strip()
    }
    names = [str(v).strip() for v in form.getlist("fallback_name")]
    values = [str(v) for v in form.getlist("fallback_value")]
    variables: dict[str, str | None] = {}
    for name, value in zip(names, values, strict=False):
        if name:
            variables[name] = value if value.strip() else None
    return parts, variables


def _save(request: Request, signed_in: SignedIn, form: FormData, template_id: str, *, is_new: bool) -> Response:
    parts, variables = _draft(form)
    errors = FormErrors()
    if not TEMPLATE_ID.match(template_id):
        errors.put("id", "Use 1–200 letters, digits, dots, dashes or underscores.")
    elif is_new and _exists(request, template_id):
        errors.put("id", f"A template {template_id!r} exists already: open it to save a new version.")
    elif not parts:
        errors.put("", "Write at least one part (an e-mail needs a subject and a text or HTML part).")
    else:
        try:
            with begin(request, signed_in) as uow:
                saved = store.save_version(uow, template_id, parts, variables)
            return redirect(request, f"/templates/{template_id}?saved={saved['version']}")
        except HeraldError as exc:
            errors.add(exc)
    versions: list[dict[str, Any]] = []
    if not is_new:
        try:
            versions = store.template_versions(get_runtime(request).engine, template_id)
        except NotFoundError:
            versions = []
    return _editor(
        request,
        template_id if not is_new else None,
        parts=parts,
        variables=variables,
        versions=versions,
        shown_version=None,
        errors=errors,
        new_id=template_id if is_new else "",
        status_code=422,
    )


def _exists(request: Request, template_id: str) -> bool:
    try:
        store.template_versions(get_runtime(request).engine, template_id)
    except NotFoundError:
        return False
    return True
