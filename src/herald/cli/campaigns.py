"""`herald campaigns …`: create, list, show, launch (with --wait), the controls, simulate, coverage, progress."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from herald.campaigns import service
from herald.campaigns.model import STATUSES
from herald.cli.common import begin, console, runtime, show_progress
from herald.core.errors import HeraldError, InvalidInputError
from herald.db.runtime import Runtime

campaigns_app = typer.Typer(
    help="Campaigns: a template version sent to a segment, simulated, launched and controlled.", no_args_is_help=True
)

CampaignId = Annotated[int, typer.Argument(min=1, help="The campaign's id.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (the API's body) instead of a table.")]


def _print_json(value: Any) -> None:
    console.print(json.dumps(value, default=str, indent=2), markup=False, emoji=False, soft_wrap=True)


def _schedule(at: str | None, local: str | None, spread: int) -> dict[str, Any]:
    if at and local:
        raise InvalidInputError("Give --at or --local-time, not both.", field="schedule")
    schedule: dict[str, Any] = {"kind": "now"}
    if at:
        schedule = {"kind": "at", "at": at}
    elif local:
        date, _, clock = local.partition("T") if "T" in local else local.partition(" ")
        schedule = {"kind": "local_time", "date": date, "time": clock}
    if spread:
        schedule["spread_minutes"] = spread
    return schedule


@campaigns_app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What operators call it.")],
    template: Annotated[str, typer.Option(help="The stored template's id.")],
    segment: Annotated[int, typer.Option(min=1, help="The segment's id.")],
    channel: Annotated[
        list[str], typer.Option(help="The channel plan, in order (repeat: --channel email --channel sms).")
    ],
    version: Annotated[
        int | None, typer.Option(min=1, help="Template version (default: the latest, pinned now).")
    ] = None,
    message_class: Annotated[str, typer.Option("--class", help="marketing, transactional or incident.")] = "marketing",
    at: Annotated[str | None, typer.Option(help="Send at this instant (ISO 8601 with zone).")] = None,
    local_time: Annotated[
        str | None, typer.Option("--local-time", help="'YYYY-MM-DD HH:MM' in each recipient's own time zone.")
    ] = None,
    spread: Annotated[int, typer.Option(min=0, help="Spread each person's start over this many minutes.")] = 0,
    rate: Annotated[int | None, typer.Option(min=1, help="At most this many messages per minute.")] = None,
) -> None:
    """Create a draft campaign; prints its id."""
    with runtime() as rt, begin(rt) as uow:
        campaign = service.create_campaign(
            uow,
            name=name,
            template_id=template,
            template_version=version,
            segment_id=segment,
            channels=channel,
            message_class=message_class,
            schedule=_schedule(at, local_time, spread),
            send_rate=rate,
        )
    console.print(f"campaign {campaign.id} created (draft): {campaign.template_id} v{campaign.template_version}")


@campaigns_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help=f"Only campaigns in this status: {', '.join(STATUSES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Campaigns, newest first."""
    with runtime() as rt:
        if status is not None and status not in STATUSES:
            raise InvalidInputError(f"Unknown status {status!r}; use one of {', '.join(STATUSES)}.")
        rows, total = service.list_campaigns(rt.engine, status=status, limit=limit)
    if as_json:
        _print_json({"total": total, "campaigns": [c.to_json() for c in rows]})
        return
    table = Table("id", "name", "status", "template", "segment", "channels", "schedule", "recipients")
    for c in rows:
        table.add_row(
            str(c.id), c.name, c.status.value, f"{c.template_id} v{c.template_version}", str(c.segment_id),
            ",".join(c.channels), c.schedule.describe(), str(c.recipients),
        )  # fmt: skip
    console.print(table if rows else "no campaigns")


@campaigns_app.command("show")
def show(campaign_id: CampaignId) -> None:
    """One campaign as JSON (the same body as GET /api/campaigns/{id})."""
    with runtime() as rt:
        _print_json(service.get_campaign(rt.engine, campaign_id).to_json())


def _wait(rt: Runtime, campaign_id: int, job_id: int, timeout: float) -> None:
    """Follow the launch job's progress until it is done (a `herald worker` or `herald serve` runs it)."""
    deadline = time.monotonic() + timeout
    columns = (TextColumn("planning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress()) as bar:
        task = bar.add_task("planning", total=None)
        while True:
            job = service.campaign_progress(rt.engine, campaign_id).job or {}
            progress = job.get("progress") or {}
            bar.update(task, completed=progress.get("done") or 0, total=progress.get("total"))
            if job.get("status") in ("done", "failed"):
                break
            if time.monotonic() > deadline:
                raise HeraldError(f"Job {job_id} is still {job.get('status')}; is a `herald worker` running?")
            time.sleep(0.3)
    if job.get("status") == "failed":
        error = job.get("error") or {}
        raise HeraldError(f"The launch job failed: {error.get('message', 'unknown error')}")


@campaigns_app.command("launch")
def launch(
    campaign_id: CampaignId,
    wait: Annotated[bool, typer.Option("--wait", help="Show the planning progress until it is done.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="With --wait: give up after this many seconds.")] = 3600,
) -> None:
    """Launch a draft: a job freezes the audience and plans it into the ledger (a worker runs it)."""
    with runtime() as rt:
        with begin(rt) as uow:
            job_id = service.launch_campaign(uow, campaign_id)
        console.print(f"campaign {campaign_id}: launch job {job_id} queued")
        if wait:
            _wait(rt, campaign_id, job_id, timeout)
            _print_progress(rt, campaign_id)


@campaigns_app.command("newcomers")
def newcomers(
    campaign_id: CampaignId,
    wait: Annotated[bool, typer.Option("--wait", help="Show the planning progress until it is done.")] = False,
    timeout: Annotated[float, typer.Option(min=1)] = 3600,
) -> None:
    """Add the people now in the segment who are not in the campaign yet, and plan them (once each)."""
    with runtime() as rt:
        with begin(rt) as uow:
            job_id = service.send_to_newcomers(uow, campaign_id)
        console.print(f"campaign {campaign_id}: newcomers job {job_id} queued")
        if wait:
            _wait(rt, campaign_id, job_id, timeout)


def _control(name: str, campaign_id: int) -> None:
    actions = {
        "pause": service.pause_campaign,
        "resume": service.resume_campaign,
        "cancel": service.cancel_campaign,
        "retry-failed": service.retry_failed,
    }
    with runtime() as rt, begin(rt) as uow:
        result = actions[name](uow, campaign_id)
    console.print(f"campaign {campaign_id} is {result.campaign.status.value}; {result.changed} message(s) changed")


@campaigns_app.command("pause")
def pause(campaign_id: CampaignId) -> None:
    """Hold every message not yet handed to a provider; those being sent finish."""
    _control("pause", campaign_id)


@campaigns_app.command("resume")
def resume(campaign_id: CampaignId) -> None:
    """Put paused messages back (at their planned time, or now); planning carries on if it was cut short."""
    _control("resume", campaign_id)


@campaigns_app.command("cancel")
def cancel(campaign_id: CampaignId) -> None:
    """Hold everything not yet sent, for good."""
    _control("cancel", campaign_id)


@campaigns_app.command("retry-failed")
def retry_failed(campaign_id: CampaignId) -> None:
    """Queue again the failed messages no provider accepted (never a second send)."""
    _control("retry-failed", campaign_id)


def _counts(title: str, counts: dict[str, int]) -> Table:
    table = Table(title, "count")
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(key, f"{value:,}")
    return table


def _print_progress(rt: Runtime, campaign_id: int) -> None:
    p = service.campaign_progress(rt.engine, campaign_id)
    console.print(f"campaign {campaign_id}: {p.status}, {p.planned:,} of {p.recipients:,} planned")
    for title, counts in (("status", p.by_status), ("hold reason", p.by_reason), ("channel", p.by_channel)):
        if counts:
            console.print(_counts(title, dict(counts)))


@campaigns_app.command("progress")
def progress(campaign_id: CampaignId, as_json: JsonFlag = False) -> None:
    """Messages by status, hold reason and channel."""
    with runtime() as rt:
        if as_json:
            _print_json(service.campaign_progress(rt.engine, campaign_id).to_json())
        else:
            _print_progress(rt, campaign_id)


def _time(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M %Z}" if value is not None else ""


@campaigns_app.command("simulate")
def simulate(
    campaign_id: CampaignId,
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Who would get what, when, on which channel, and who is skipped or held and why (nothing is written)."""
    with runtime() as rt:
        sim = service.simulate_campaign(rt, campaign_id, page=page, per_page=per_page)
    if as_json:
        _print_json(sim.to_json())
        return
    table = Table("person", "name", "outcome", "channel", "local time", "UTC", "reason")
    for r in sim.rows:
        local = _time(r.local_send_at) + (" *" if r.zone_note else "")
        table.add_row(str(r.person_id), r.name, r.outcome, r.channel or "", local, _time(r.send_at), r.reason_text)
    console.print(table)
    console.print(f"{sim.total:,} recipient(s) ({sim.audience}); page {sim.page} shows {len(sim.rows)}")
    for title, counts in (("outcome", sim.by_outcome), ("reason", sim.by_reason), ("channel", sim.by_channel)):
        if counts:
            console.print(_counts(title, dict(counts)))
    for note in sim.notes:
        console.print(f"* {note}")


@campaigns_app.command("coverage")
def coverage(campaign_id: CampaignId, as_json: JsonFlag = False) -> None:
    """The template's variables over the audience: who lacks which, and whether they get a fallback or wait."""
    with runtime() as rt:
        report = service.campaign_coverage(rt, campaign_id)
    if as_json:
        _print_json(report.to_json())
        return
    console.print(
        f"{report.template_id} v{report.template_version} over {report.total:,} people: "
        f"{report.held:,} would be held for a missing variable"
    )
    for line in report.lines:
        console.print(f"  {line}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(campaigns_app, name="campaigns")
