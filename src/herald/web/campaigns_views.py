"""Campaign pages: the list, the draft editor, the campaign page (coverage, simulation, live progress, controls)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import Response

from herald.campaigns import service as campaigns
from herald.core.channels import MESSAGE_CLASSES, PARTS
from herald.core.errors import HeraldError, NotFoundError
from herald.core.inputs import Count, Id, Text
from herald.delivery import preview as previews
from herald.delivery.reasons import REASON_KINDS
from herald.segments import service as segments
from herald.templates import store as templates
from herald.web.deps import CSRF, SignedIn, begin, get_runtime, require_role
from herald.web.render import FormErrors, redirect, render

router = APIRouter(prefix="/campaigns")
StaffDep = Annotated[SignedIn, Depends(require_role("admin", "marketer"))]
FormStr = Annotated[Text, Form()]
PAGE_SIZE = 50
SIM_PAGE_SIZE = 25
HELD_PAGE_SIZE = 25
PLAN_SLOTS = 3  # a channel plan of up to three channels, in failover order, is enough for the form
CHANNEL_LABELS = {"email": "E-mail", "sms": "SMS", "whatsapp": "WhatsApp", "voice": "Voice"}
CAMPAIGN_CHANNELS = tuple(PARTS)  # the channels a template renders for (a webhook has no template)
# The ledger statuses the progress panel always shows, in the order a message moves through them.
PROGRESS_STATUSES = (
    ("queued", "Queued"),
    ("sending", "Sending"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("sent_unconfirmed", "Sent, unconfirmed"),
    ("held", "Held"),
    ("failed", "Failed"),
)
WAITING = ("planned", "queued", "retry_wait", "sending", "unknown")
STATUS_BADGES = {
    "draft": "badge",
    "launching": "badge-info",
    "running": "badge-info",
    "paused": "badge-warn",
    "cancelled": "badge-danger",
    "finished": "badge-ok",
}
OUTCOME_LABELS = {"send": "Sent", "hold": "Held", "skip": "Skipped", "duplicate": "Already has it"}
CONTROLS: Mapping[str, tuple[str, str]] = {
    # action → (what the confirmation asks, what the notice says after)
    "pause": ("Pause this campaign? Messages not yet taken by a worker wait until you resume.", "Paused"),
    "resume": ("Resume this campaign? Paused messages go out again, each person still once.", "Resumed"),
    "cancel": ("Cancel this campaign for good? Nothing more is sent; this cannot be undone.", "Cancelled"),
    "retry-failed": (
        "Retry the failed messages that no provider accepted? Nobody gets a second copy.",
        "Queued again",
    ),
    "newcomers": (
        "Send to people who joined the segment since launch? Each person still gets it once.",
        "Planning newcomers",
    ),
}


def _segment_names(engine: Any) -> dict[int, str]:
    return {segment.id: segment.name for segment in segments.list_segments(engine)}


def _badge(status: str) -> str:
    return STATUS_BADGES.get(status, "badge-info")


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
    for campaign in found:
        progress = None
        if campaign.status != "draft":
            progress = _progress(campaigns.campaign_progress(runtime.engine, campaign.id))
        rows.append(
            {
                "campaign": campaign,
                "badge": _badge(campaign.status),
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


def _form_values(campaign: campaigns.Campaign | None) -> dict[str, Any]:
    if campaign is None:
        return {
            "name": "",
            "segment_id": "",
            "template_id": "",
            "template_version": "",
            "channels": ["email"],
            "message_class": "marketing",
            "schedule_kind": "now",
            "at": "",
            "date": "",
            "time": "",
            "spread_minutes": "",
            "send_rate": "",
        }
    schedule = campaign.schedule
    return {
        "name": campaign.name,
        "segment_id": str(campaign.segment_id),
        "template_id": campaign.template_id,
        "template_version": str(campaign.template_version or ""),
        "channels": list(campaign.channels),
        "message_class": campaign.message_class,
        "schedule_kind": schedule.kind,
        "at": schedule.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M") if schedule.at else "",
        "date": schedule.date.isoformat() if schedule.date else "",
        "time": schedule.time.strftime("%H:%M") if schedule.time else "",
        "spread_minutes": str(schedule.spread_minutes or ""),
        "send_rate": str(campaign.send_rate or ""),
    }


def _editor(
    request: Request,
    campaign: campaigns.Campaign | None,
    values: Mapping[str, Any],
    *,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    engine = get_runtime(request).engine
    template_list = templates.list_templates(engine)
    chosen_template = str(values.get("template_id") or "")
    versions = _versions(engine, chosen_template)
    channels = list(values.get("channels") or [])
    coverage = None
    if campaign is not None:
        try:
            coverage = campaigns.campaign_coverage(get_runtime(request), campaign.id)
        except HeraldError:
            coverage = None  # the campaign page says why; the editor is where it gets fixed
    context = {
        "title": f"Edit {campaign.name}" if campaign else "New campaign",
        "campaign": campaign,
        "values": values,
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
    return _editor(request, None, _form_values(None))


def _parse_form(
    name: str,
    segment_id: str,
    template_id: str,
    template_version: str,
    channels: list[str],
    message_class: str,
    schedule_kind: str,
    at: str,
    date: str,
    time: str,
    spread_minutes: str,
    send_rate: str,
) -> tuple[dict[str, Any], dict[str, Any], FormErrors]:
    """The form as typed (to show it again) and as the service's fields, with the errors the form can tell."""
    plan = [c for c in dict.fromkeys(c.strip() for c in channels) if c]
    typed = {
        "name": name,
        "segment_id": segment_id,
        "template_id": template_id,
        "template_version": template_version,
        "channels": plan,
        "message_class": message_class,
        "schedule_kind": schedule_kind,
        "at": at,
        "date": date,
        "time": time,
        "spread_minutes": spread_minutes,
        "send_rate": send_rate,
    }
    errors = FormErrors()

    def number(text: str, field: str, label: str) -> int | None:
        text = text.strip()
        if not text:
            return None
        if not text.isdecimal() or not 0 < int(text) < 2**63:
            errors.put(field, f"{label} is a whole number.")
            return None
        return int(text)

    schedule: dict[str, Any] = {"kind": schedule_kind or "now"}
    if schedule_kind == "at":
        # A datetime-local field has no zone: the form says it is UTC.
        schedule["at"] = f"{at}:00+00:00" if at and len(at) == 16 else at
    elif schedule_kind == "local_time":
        schedule["date"], schedule["time"] = date, time
    spread = number(spread_minutes, "spread_minutes", "The spread")
    if spread:
        schedule["spread_minutes"] = spread
    fields = {
        "name": name,
        "segment_id": number(segment_id, "segment_id", "The segment"),
        "template_id": template_id,
        "template_version": number(template_version, "template_version", "The version"),
        "channels": plan,
        "message_class": message_class,
        "schedule": schedule,
        "send_rate": number(send_rate, "send_rate", "The send rate"),
    }
    if fields["segment_id"] is None and "segment_id" not in errors:
        errors.put("segment_id", "Choose the segment to send to.")
    if not template_id:
        errors.put("template_id", "Choose a template.")
    return typed, fields, errors


def _field_of(exc: HeraldError) -> str:
    """The form field a service error names (schedule.at → at), so the message shows beside it."""
    field = str(exc.fields.get("field") or "")
    if field.startswith("schedule."):
        name = field.removeprefix("schedule.")
        return "schedule_kind" if name == "kind" else name
    return "schedule_kind" if field == "schedule" else field


CampaignForm = Annotated[list[str], Form()]


@router.post("/new", dependencies=CSRF)
def create_campaign(
    request: Request,
    signed_in: StaffDep,
    name: FormStr = "",
    segment_id: FormStr = "",
    template_id: FormStr = "",
    template_version: FormStr = "",
    channel: CampaignForm = [],  # noqa: B006 (FastAPI copies defaults per request)
    message_class: FormStr = "marketing",
    schedule_kind: FormStr = "now",
    at: FormStr = "",
    date: FormStr = "",
    time: FormStr = "",
    spread_minutes: FormStr = "",
    send_rate: FormStr = "",
) -> Response:
    typed, fields, errors = _parse_form(
        name, segment_id, template_id, template_version, channel, message_class, schedule_kind, at, date, time,
        spread_minutes, send_rate,
    )  # fmt: skip
    if not errors:
        try:
            with begin(request, signed_in) as uow:
                created = campaigns.create_campaign(uow, **fields)
            return redirect(request, f"/campaigns/{created.id}")
        except HeraldError as exc:
            errors.put(_field_of(exc), exc.message)
    return _editor(request, None, typed, errors=errors, status_code=422)


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
    return _editor(request, campaign, _form_values(campaign))


@router.post("/{campaign_id}/edit", dependencies=CSRF)
def save_campaign(
    request: Request,
    signed_in: StaffDep,
    campaign_id: Id,
    name: FormStr = "",
    segment_id: FormStr = "",
    template_id: FormStr = "",
    template_version: FormStr = "",
    channel: CampaignForm = [],  # noqa: B006
    message_class: FormStr = "marketing",
    schedule_kind: FormStr = "now",
    at: FormStr = "",
    date: FormStr = "",
    time: FormStr = "",
    spread_minutes: FormStr = "",
    send_rate: FormStr = "",
) -> Response:
    try:
        campaign = campaigns.get_campaign(get_runtime(request).engine, campaign_id)
    except HeraldError:
        return _not_found(request, f"There is no campaign {campaign_id}.")
    typed, fields, errors = _parse_form(
        name, segment_id, template_id, template_version, channel, message_class, schedule_kind, at, date, time,
        spread_minutes, send_rate,
    )  # fmt: skip
    if not errors:
        try:
            with begin(request, signed_in) as uow:
                campaigns.update_campaign(uow, campaign_id, fields)
            return redirect(request, f"/campaigns/{campaign_id}?done=saved")
        except HeraldError as exc:
            errors.put(_field_of(exc), exc.message)
    return _editor(request, campaign, typed, errors=errors, status_code=422)


# ---------------------------------------------------------------------------------------------------------------
# The campaign page: what it is, its coverage and simulation (drafts), its live progress and controls


def _progress(progress: campaigns.Progress) -> dict[str, Any]:
    """The progress panel's numbers: tiles per status, a bar, reasons in words, channels."""
    by_status = dict(progress.by_status)
    waiting = sum(by_status.get(s, 0) for s in WAITING)
    settled = max(0, progress.planned - waiting)
    recipients = max(progress.recipients, progress.planned)
    shown = {key for key, _ in PROGRESS_STATUSES}
    sent = sum(by_status.get(s, 0) for s in ("sent", "delivered", "sent_unconfirmed"))
    return {
        "raw": progress,
        "tiles": [(key, label, by_status.get(key, 0)) for key, label in PROGRESS_STATUSES],
        "other": sorted((k, v) for k, v in by_status.items() if k not in shown and v),
        "planned": progress.planned,
        "recipients": recipients,
        "settled": settled,
        "sent": sent,
        "percent": 100 if recipients == 0 and progress.done else (settled * 100 // recipients if recipients else 0),
        "reasons": sorted(
            ((REASON_KINDS.get(kind, kind), kind, count) for kind, count in progress.by_reason.items() if count),
            key=lambda item: -item[2],
        ),
        "channels": sorted(((CHANNEL_LABELS.get(c, c), c, n) for c, n in progress.by_channel.items() if n)),
        "done": progress.done,
        "job": progress.job,
    }


def _polling(campaign_status: str, progress: dict[str, Any]) -> bool:
    """Poll while something will still move by itself: a launch planning, or messages on their way."""
    return campaign_status == "launching" or (campaign_status in ("running", "paused") and not progress["done"])


def _simulation(page: campaigns.SimulationPage) -> dict[str, Any]:
    return {
        "raw": page,
        "outcomes": [(OUTCOME_LABELS.get(k, k), k, n) for k, n in page.by_outcome.items() if n],
        "reasons": sorted(
            ((REASON_KINDS.get(kind, kind), kind, n) for kind, n in page.by_reason.items() if n), key=lambda r: -r[2]
        ),
        "channels": sorted((CHANNEL_LABELS.get(c, c), c, n) for c, n in page.by_channel.items() if n),
        "last_page": max(1, -(-page.total // page.per_page)),
    }


def _controls(status: str, progress: dict[str, Any] | None) -> list[dict[str, str]]:
    """The buttons a campaign in this state offers (the service refuses the rest anyway)."""
    actions: list[str] = []
    if status in ("launching", "running"):
        actions.append("pause")
    elif status == "paused":
        actions.append("resume")
    if status in ("running", "paused", "finished") and progress is not None:
        if progress["raw"].by_status.get("failed", 0):
            actions.append("retry-failed")
        actions.append("newcomers")
    if status in ("launching", "running", "paused"):
        actions.append("cancel")  # last: the one that cannot be undone sits apart
    labels = {
        "pause": "Pause",
        "resume": "Resume",
        "cancel": "Cancel campaign",
        "retry-failed": "Retry failed",
        "newcomers": "Send to newcomers",
    }
    return [{"action": a, "label": labels[a], "confirm": CONTROLS[a][0]} for a in actions]


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
        "badge": _badge(campaign.status),
        "segment": _segment_names(runtime.engine).get(campaign.segment_id),
        "channel_labels": CHANNEL_LABELS,
        "outcome_labels": OUTCOME_LABELS,
        "notice": _notice(done, changed),
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
            context["simulation"] = _simulation(simulated)
        except HeraldError as exc:
            context["coverage_error"] = context["coverage_error"] or exc.message
    else:
        context |= _live(request, campaign, page)
    return render(request, "campaign.html", context)


def _notice(done: str, changed: int | None) -> str | None:
    if done == "saved":
        return "The draft is saved."
    if done == "launched":
        return "Launched: the audience is frozen and being planned."
    if done in CONTROLS:
        after = CONTROLS[done][1]
        return f"{after}." if changed is None else f"{after}: {changed:,} message{'' if changed == 1 else 's'}."
    return None


def _live(request: Request, campaign: campaigns.Campaign, held_page: int) -> dict[str, Any]:
    engine = get_runtime(request).engine
    progress = _progress(campaigns.campaign_progress(engine, campaign.id))
    held = campaigns.held_recipients(engine, campaign.id, page=held_page, per_page=HELD_PAGE_SIZE)
    return {
        "progress": progress,
        "polling": _polling(campaign.status, progress),
        "controls": _controls(campaign.status, progress),
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
    context = {"campaign": campaign, "badge": _badge(campaign.status), "channel_labels": CHANNEL_LABELS}
    return render(request, "_campaign_progress.html", context | _live(request, campaign, page))


@router.get("/{campaign_id}/simulation")
def simulation_page(
    request: Request, signed_in: StaffDep, campaign_id: Id, page: Annotated[Id, Query(le=1_000_000)] = 1
) -> Response:
    runtime = get_runtime(request)
    try:
        campaign = campaigns.get_campaign(runtime.engine, campaign_id)
        simulation = _simulation(campaigns.simulate_campaign(runtime, campaign_id, page=page, per_page=PAGE_SIZE))
    except NotFoundError:
        return _not_found(request, f"There is no campaign {campaign_id}.")
    context = {
        "title": f"Simulation · {campaign.name}",
        "campaign": campaign,
        "simulation": simulation,
        "channel_labels": CHANNEL_LABELS,
        "outcome_labels": OUTCOME_LABELS,
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
    if action not in CONTROLS:
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
