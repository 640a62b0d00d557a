"""Campaign pages: the list, the draft editor, the campaign page (coverage, simulation, live progress, controls)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from herald.campaigns import service as campaigns
from herald.core.channels import MESSAGE_CLASSES, PARTS
from herald.core.errors import HeraldError, NotFoundError
from herald.core.inputs import Count, Id, Text
from herald.delivery import preview as previews
from herald.segments import service as segments
from herald.templates import store as templates
from herald.web import campaign_panels as panels
from herald.web.campaign_form import DraftForm, field_of, read_form
from herald.web.deps import CSRF, SignedIn, begin, get_runtime, require_role
from herald.web.render import FormErrors, redirect, render

router = APIRouter(prefix="/campaigns")
StaffDep = Annotated[SignedIn, Depends(require_role("admin", "marketer"))]
DraftDep = Annotated[DraftForm, Depends(read_form)]
PAGE_SIZE = 50
SIM_PAGE_SIZE = 25
HELD_PAGE_SIZE = 25
PLAN_SLOTS = 3  # a channel plan of up to three channels, in failover order, is enough for the form
CAMPAIGN_CHANNELS = tuple(PARTS)  # the channels a template renders for (a webhook has no template)
CHANNEL_LABELS = panels.CHANNEL_LABELS


def _segment_names(engine: Any) -> dict[int, str]:
    return {segment.id: segment.name for segment in segments.list_segments(engine)}


def _not_found(request: Request, message: str) -> Response:
    return render(request, "error.html", {"title": "Not found", "message": message}, status_code=404)


# ---------------------------------------------------------------------------------------------------------------
# The list


@router.get("")
def campaigns_page(request: Request, signed_in: StaffDep, page: Annotated[Id, Query(le=1_000_000)] = 1) -> Response:
    runtime = get_runtime(request)
    found, total = campaigns.list_campaigns(runtime.engine, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    names = _segment_names(runtime.engine)
    rows = []
    launched = campaigns.campaigns_progress(runtime.engine, [c for c in found if c.status != "draft"])
    for campaign in found:
        progress = None
        if campaign.id in launched:
            progress = panels.progress_panel(launched[campaign.id])
        rows.append(
            {
                "campaign": campaign,
                "badge": panels.badge(campaign.status),
                "segment": names.get(campaign.segment_id, f"Segment {campaign.segment_id}"),
                "progress": progress,
            }
        )
    context = {
        "title": "Campaigns",
        "rows": rows,
        "total": total,
        "page": page,
        "last_page": max(1, -(-total // PAGE_SIZE)),
    }
    return render(request, "campaigns.html", context)


# ---------------------------------------------------------------------------------------------------------------
# The editor (drafts only)


def _editor(
    request: Request,
    campaign: campaigns.Campaign | None,
    form: DraftForm,
    *,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    engine = get_runtime(request).engine
    template_list = templates.list_templates(engine)
    versions = _versions(engine, form.template_id)
    channels = list(form.channels)
    coverage = None
    if campaign is not None:
        try:
            coverage = campaigns.campaign_coverage(get_runtime(request), campaign.id)
        except HeraldError:
            coverage = None  # the campaign page says why; the editor is where it gets fixed
    context = {
        "title": f"Edit {campaign.name}" if campaign else "New campaign",
        "campaign": campaign,
        "values": form.values(),
        "segments": segments.list_segments(engine),
        "templates": template_list,
        "versions": versions,
        "plan": channels + [""] * (PLAN_SLOTS - len(channels)),
        "channel_choices": [(c, CHANNEL_LABELS.get(c, c)) for c in CAMPAIGN_CHANNELS],
        "classes": MESSAGE_CLASSES,
        "coverage": coverage,
        "count": None,  # the segment's live count arrives by htmx
        "errors": errors or FormErrors(),
    }
    return render(request, "campaign_edit.html", context, status_code=status_code)


def _versions(engine: Any, template_id: str) -> list[int]:
    if not template_id:
        return []
    try:
        return [v["version"] for v in templates.template_versions(engine, template_id)]
    except NotFoundError:
        return []


@router.get("/new")
def new_campaign(request: Request, signed_in: StaffDep) -> Response:
    return _editor(request, None, DraftForm())


@router.post("/new", dependencies=CSRF)
def create_campaign(request: Request, signed_in: StaffDep, form: DraftDep) -> Response:
    fields, errors = form.fields()
    if not errors:
        try:
            with begin(request, signed_in) as uow:
                created = campaigns.create_campaign(uow, **fields)
            return redirect(request, f"/campaigns/{created.id}")
        except HeraldError as exc:
            errors.put(field_of(exc), exc.message)
    return _editor(request, None, form, errors=errors, status_code=422)


@router.get("/segment-count")
def segment_count(
    request: Request, signed_in: StaffDep, segment_id: Annotated[Text, Query(max_length=20)] = ""
) -> Response:
    """The chosen segment's live count (an htmx fragment beside the picker)."""
    count = None
    if segment_id.isdecimal() and 0 < int(segment_id) < 2**63:
        runtime = get_runtime(request)
        try:
            count = segments.count_segment(runtime.engine, int(segment_id), runtime.clock.now())
        except NotFoundError:
            count = None
    return render(request, "_segment_count.html", {"count": count, "segment_id": segment_id})


@router.get("/template-versions")
def template_versions(
    request: Request,
    signed_in: StaffDep,
    template_id: Annotated[Text, Query(max_length=200)] = "",
) -> Response:
    """The version picker for the chosen template (an htmx fragment): latest by default."""
    versions = _versions(get_runtime(request).engine, template_id)
    response = render(request, "_version_select.html", {"versions": versions, "values": {"template_version": ""}})
    response.headers["HX-Trigger"] = "template-changed"
    return response


@router.get("/template-preview")
def template_preview(
    request: Request,
    signed_in: StaffDep,
    template_id: Annotated[Text, Query(max_length=200)] = "",
    template_version: Annotated[Text, Query(max_length=20)] = "",
    person: Annotated[Text, Query(max_length=20)] = "",
) -> Response:
    """The chosen template version rendered for the chosen person (the templates editor's preview fragment)."""
    context: dict[str, Any] = {"result": None, "problem": None}
    version = int(template_version) if template_version.isdecimal() and 0 < int(template_version) < 2**31 else None
    if not template_id:
        context["problem"] = "Choose a template to preview it."
    elif not person.isdecimal() or not 0 < int(person) < 2**63:
        context["problem"] = "Choose a person to preview with."
    else:
        try:
            result = previews.preview_template(get_runtime(request).engine, template_id, int(person), version=version)
            context["result"] = result.as_dict()
        except HeraldError as exc:
            context["problem"] = exc.message
    return render(request, "_template_preview.html", context)


@router.get("/{campaign_id}/edit")
def edit_campaign(request: Request, signed_in: StaffDep, campaign_id: Id) -> Response:
    try:
        campaign = campaigns.get_campaign(get_runtime(request).engine, campaign_id)
    except HeraldError:
        return _not_found(request, f"There is no campaign {campaign_id}.")
    if campaign.status != "draft":
        return redirect(request, f"/campaigns/{campaign_id}")
    return _editor(request, campaign, DraftForm.of(campaign))


@router.post("/{campaign_id}/edit", dependencies=CSRF)
def save_campaign(request: Request, signed_in: StaffDep, campaign_id: Id, form: DraftDep) -> Response:
    try:
        campaign = campaigns.get_campaign(get_runtime(request).engine, campaign_id)
    except HeraldError:
        return _not_found(request, f"There is no campaign {campaign_id}.")
    fields, errors = form.fields()
    if not errors:
        try:
            with begin(request, signed_in) as uow:
                campaigns.update_campaign(uow, campaign_id, fields)
            return redirect(request, f"/campaigns/{campaign_id}?done=saved")
        except HeraldError as exc:
            errors.put(field_of(exc), exc.message)
    return _editor(request, campaign, form, errors=errors, status_code=422)


# ---------------------------------------------------------------------------------------------------------------
# The campaign page: what it is, its coverage and simulation (drafts), its live progress and controls


@router.get("/{campaign_id}")
def campaign_page(
    request: Request,
    signed_in: StaffDep,
    campaign_id: Id,
    page: Annotated[Id, Query(le=1_000_000)] = 1,
    done: Annotated[Text, Query(max_length=20)] = "",
    changed: Annotated[Count | None, Query()] = None,
    error: Annotated[Text, Query(max_length=300)] = "",
) -> Response:
    runtime = get_runtime(request)
    try:
        campaign = campaigns.get_campaign(runtime.engine, campaign_id)
    except HeraldError:
        return _not_found(request, f"There is no campaign {campaign_id}.")
    context: dict[str, Any] = {
        "title": campaign.name,
        "campaign": campaign,
        "badge": panels.badge(campaign.status),
        "segment": _segment_names(runtime.engine).get(campaign.segment_id),
        "channel_labels": CHANNEL_LABELS,
        "outcome_labels": panels.OUTCOME_LABELS,
        "notice": panels.notice(done, changed),
        "action_error": error or None,
        "coverage": None,
        "coverage_error": None,
        "simulation": None,
        "progress": None,
        "held": None,
    }
    if campaign.status == "draft":
        try:
            context["coverage"] = campaigns.campaign_coverage(runtime, campaign_id)
        except HeraldError as exc:
            context["coverage_error"] = exc.message
        try:
            simulated = campaigns.simulate_campaign(runtime, campaign_id, per_page=SIM_PAGE_SIZE)
            context["simulation"] = panels.simulation_panel(simulated)
        except HeraldError as exc:
            context["coverage_error"] = context["coverage_error"] or exc.message
    else:
        context |= _live(request, campaign, page)
    return render(request, "campaign.html", context)


def _live(request: Request, campaign: campaigns.Campaign, held_page: int) -> dict[str, Any]:
    engine = get_runtime(request).engine
    progress = panels.progress_panel(campaigns.campaign_progress(engine, campaign.id))
    held = campaigns.held_recipients(engine, campaign.id, page=held_page, per_page=HELD_PAGE_SIZE)
    return {
        "progress": progress,
        "polling": panels.polling(campaign.status, progress),
        "controls": panels.controls(campaign.status, progress),
        "held": held,
        "held_last_page": max(1, -(-held.total // held.per_page)),
    }


@router.get("/{campaign_id}/progress")
def progress_fragment(
    request: Request, signed_in: StaffDep, campaign_id: Id, page: Annotated[Id, Query(le=1_000_000)] = 1
) -> Response:
    """The live panel htmx polls (progress, controls, held recipients) until nothing moves by itself."""
    try:
        campaign = campaigns.get_campaign(get_runtime(request).engine, campaign_id)
    except HeraldError:
        return _not_found(request, f"There is no campaign {campaign_id}.")
    context = {"campaign": campaign, "badge": panels.badge(campaign.status), "channel_labels": CHANNEL_LABELS}
    return render(request, "_campaign_progress.html", context | _live(request, campaign, page))


@router.get("/{campaign_id}/simulation")
def simulation_page(
    request: Request, signed_in: StaffDep, campaign_id: Id, page: Annotated[Id, Query(le=1_000_000)] = 1
) -> Response:
    runtime = get_runtime(request)
    try:
        campaign = campaigns.get_campaign(runtime.engine, campaign_id)
        simulated = campaigns.simulate_campaign(runtime, campaign_id, page=page, per_page=PAGE_SIZE)
    except NotFoundError:
        return _not_found(request, f"There is no campaign {campaign_id}.")
    context = {
        "title": f"Simulation · {campaign.name}",
        "campaign": campaign,
        "simulation": panels.simulation_panel(simulated),
        "channel_labels": CHANNEL_LABELS,
        "outcome_labels": panels.OUTCOME_LABELS,
        "page": page,
    }
    return render(request, "campaign_simulation.html", context)


@router.post("/{campaign_id}/launch", dependencies=CSRF)
def launch(request: Request, signed_in: StaffDep, campaign_id: Id) -> Response:
    try:
        with begin(request, signed_in) as uow:
            campaigns.launch_campaign(uow, campaign_id)
    except HeraldError as exc:
        return redirect(request, f"/campaigns/{campaign_id}?{urlencode({'error': exc.message[:300]})}")
    return redirect(request, f"/campaigns/{campaign_id}?done=launched")


@router.post("/{campaign_id}/{action}", dependencies=CSRF)
def control(request: Request, signed_in: StaffDep, campaign_id: Id, action: Text) -> Response:
    if action not in panels.CONTROLS:
        return _not_found(request, f"There is no campaign action {action!r}.")
    query: dict[str, Any] = {"done": action}
    try:
        with begin(request, signed_in) as uow:
            if action == "newcomers":
                campaigns.send_to_newcomers(uow, campaign_id)
            else:
                run = {
                    "pause": campaigns.pause_campaign,
                    "resume": campaigns.resume_campaign,
                    "cancel": campaigns.cancel_campaign,
                    "retry-failed": campaigns.retry_failed,
                }[action]
                query["changed"] = run(uow, campaign_id).changed
    except HeraldError as exc:
        query = {"error": exc.message[:300]}
    return redirect(request, f"/campaigns/{campaign_id}?{urlencode(query)}")
