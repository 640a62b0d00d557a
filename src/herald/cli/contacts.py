"""`herald contacts …`: import, export, undo, duplicates, dismiss-suggestion, merge, unmerge, show."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from herald.cli.common import begin, console, runtime, show_progress
from herald.consent.policy import CHANNELS, PURPOSES
from herald.contacts import dedupe, erase, export, importing, service, undo
from herald.contacts.importers import FORMATS
from herald.core.actor import CLI

contacts_app = typer.Typer(help="People: import, export, deduplicate, merge and unmerge.", no_args_is_help=True)
MAX_ISSUES_SHOWN = 50


@contextmanager
def _progress(label: str) -> Iterator[importing.Progress]:
    if not show_progress():
        yield lambda done, total: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contacts_app.command("import")
def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV file to import."),
    format: str = typer.Option("auto", "--format", help=f"Layout: {' | '.join(FORMATS)}."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would happen; change nothing."),
    default_region: str | None = typer.Option(
        None,
        "--default-region",
        help="Country (ISO code) for national phone numbers; default HERALD_DEFAULT_REGION.",
    ),
    rejects: Path | None = typer.Option(None, "--rejects", help="Where to write the rejects CSV (default: data dir)."),
) -> None:
    """Import contacts: one person per real person, every row kept as a source record, bad rows reported."""
    with runtime() as rt:
        region = (default_region or rt.settings.default_region).upper()
        workers = importing.default_workers(rt.settings.import_workers)
        with _progress("importing" if not dry_run else "dry run") as progress:
            report = importing.run_import(
                rt.engine,
                rt.clock,
                file,
                fmt=format,
                default_region=region,
                dry_run=dry_run,
                workers=workers,
                progress=progress,
                rejects_dir=rejects or rt.settings.data_dir / "imports",
                actor=CLI,
            )
        if dry_run and report.issues:
            report.rejects_file = importing.write_rejects(report.issues, rejects or Path(), "dry-run")
    _print_report(report)


def _print_report(report: importing.ImportReport) -> None:
    issues = report.issues
    for issue in issues[:MAX_ISSUES_SHOWN]:
        where = f" [{issue.field}]" if issue.field else ""
        label = "warning " if issue.kind == "warning" else ""
        console.print(f"row {issue.row_number}: {label}{issue.reason}{where}: {issue.message}", markup=False)
    if len(issues) > MAX_ISSUES_SHOWN:
        console.print(f"… and {len(issues) - MAX_ISSUES_SHOWN} more rejected rows and warnings")
    head = "dry run (nothing changed)" if report.dry_run else f"batch {report.batch_id}"
    console.print(
        f"{head}: {report.file_name} as {report.format}, {report.total_rows} rows, encoding {report.encoding_label}",
        markup=False,
    )
    console.print("  ".join(f"{k}={v}" for k, v in report.counts.items()))
    if report.rejects_file:
        console.print(f"rejects and warnings written to {report.rejects_file}", markup=False)


@contacts_app.command("import-undo")
def import_undo(batch: int = typer.Argument(..., help="The batch id an import printed.")) -> None:
    """Roll an import back completely: people it created go, people it changed are restored."""
    with runtime() as rt, begin(rt) as uow:
        result = undo.undo_import(uow, batch)
    console.print(
        f"batch {batch} undone: {result['people_removed']} people removed, {result['people_restored']} restored"
    )


@contacts_app.command("export")
def export_(
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    with_sources: bool = typer.Option(
        False, "--with-sources", help="One line per source record instead of per person."
    ),
) -> None:
    """Export everyone (identifiers, attributes, consent) or, with --with-sources, every source record."""
    with runtime() as rt:
        kind = "sources" if with_sources else "people"
        with _progress("exporting") as progress:
            written = export.export_contacts(rt.engine, rt.clock, CLI, kind, out, progress)
    console.print(f"wrote {written} lines to {out}", markup=False)


@contacts_app.command("duplicates")
def duplicates(
    threshold: float = typer.Option(
        88.0, min=0, max=100, help="Minimum name similarity (0–100); a similar name also needs other evidence."
    ),
    page: int = typer.Option(1, "--page", min=1, help="Which page of suggestions to show."),
    per_page: int = typer.Option(50, "--per-page", min=1, max=dedupe.MAX_PER_PAGE, help="Suggestions per page."),
    status: str = typer.Option("open", "--status", help=f"Which suggestions: {' | '.join(dedupe.STATUSES)}."),
    scan: bool = typer.Option(True, "--scan/--no-scan", help="Scan for new pairs before listing."),
) -> None:
    """Scan for likely duplicate pairs and list a page of them: both names, score and the evidence."""
    with runtime() as rt:
        if scan:
            result = dedupe.compute_suggestions(rt.engine, rt.clock, threshold)
            console.print(
                f"scan: {result.new} new, {result.refreshed} updated, {result.withdrawn} withdrawn"
                f" (no longer enough evidence)"
            )
        listing = dedupe.list_suggestions(rt.engine, status, page=page, per_page=per_page)
    if not listing.total:
        console.print(f"no {status} duplicate suggestions")
        return
    table = Table("suggestion", "person A", "person B", "score", "evidence")
    for s in listing.items:
        table.add_row(
            str(s.id),
            f"{s.person_a_name or '(no name)'} #{s.person_a_id}",
            f"{s.person_b_name or '(no name)'} #{s.person_b_id}",
            f"{s.score:.0f}",
            s.reason,
        )
    if listing.items:
        console.print(table)
    first = (listing.page - 1) * listing.per_page + 1
    shown = f"{first}–{first + len(listing.items) - 1}" if listing.items else "none"
    console.print(
        f"{listing.total} {status} suggestions; showing {shown} (page {listing.page} of {listing.last_page})",
        markup=False,
    )


@contacts_app.command("dismiss-suggestion")
def dismiss_suggestion(suggestion: int = typer.Argument(..., help="The suggestion id `duplicates` printed.")) -> None:
    """Dismiss a duplicate suggestion: the two are different people, and a re-scan will not suggest them again."""
    with runtime() as rt, begin(rt) as uow:
        s = dedupe.dismiss_suggestion(uow, suggestion)
    console.print(
        f"suggestion {s.id} dismissed: {s.person_a_name or '(no name)'} #{s.person_a_id}"
        f" and {s.person_b_name or '(no name)'} #{s.person_b_id} are not suggested again",
        markup=False,
    )


@contacts_app.command("merge")
def merge(
    survivor: int = typer.Argument(..., help="Person id that stays."),
    other: int = typer.Argument(..., help="Person id merged into it."),
    reason: str = typer.Option("merged by operator", "--reason", help="Why; kept with the merge."),
) -> None:
    """Merge two people (reversible with `herald contacts unmerge`)."""
    with runtime() as rt, begin(rt) as uow:
        merge_id = service.merge_contacts(uow, survivor, other, reason=reason)
    console.print(f"merge {merge_id}: person {other} merged into {survivor}")


@contacts_app.command("unmerge")
def unmerge(merge_id: int = typer.Argument(..., help="The merge id to undo.")) -> None:
    """Undo a merge: both people come back with their own identifiers and history."""
    with runtime() as rt, begin(rt) as uow:
        result = service.unmerge_contacts(uow, merge_id)
    console.print(f"merge {merge_id} undone: person {result['restored_id']} restored beside {result['survivor_id']}")
    if "reopened_suggestion_id" in result:
        console.print(f"duplicate suggestion {result['reopened_suggestion_id']} is open again")


@contacts_app.command("erase")
def erase_(
    person: int = typer.Argument(..., help="Person id to erase."),
    yes: bool = typer.Option(False, "--yes", help="Erase without asking (for scripts)."),
) -> None:
    """Erase a person's personal data for good (a keyed hash keeps a re-import suppressed)."""
    if not yes:
        typer.confirm(f"Erase person {person}? This cannot be undone", abort=True)
    with runtime() as rt, begin(rt) as uow:
        result = erase.erase_person(uow, person)
    console.print(f"person {person} erased: {result['identifiers_tombstoned']} identifiers tombstoned")


@contacts_app.command("consent")
def consent(
    person: int = typer.Argument(..., help="Person id."),
    channel: str = typer.Option(..., "--channel", help=f"{' | '.join(CHANNELS)}."),
    kind: str = typer.Option(..., "--kind", help="subscribed | unsubscribed | bounced | complained | suppressed."),
    purpose: str = typer.Option("marketing", "--purpose", help=f"{' | '.join(PURPOSES)} | all."),
    explicit: bool = typer.Option(False, "--explicit", help="The person asked explicitly (needed to re-subscribe)."),
    note: str | None = typer.Option(None, "--note", help="Kept with the consent event."),
) -> None:
    """Record a consent event for one person on one channel (the ledger is append-only)."""
    with runtime() as rt, begin(rt) as uow:
        service.record_consent(
            uow, person, channel=channel, purpose=purpose, kind=kind, explicit=explicit, source="cli", note=note
        )
    console.print(f"person {person}: {channel}:{purpose} {kind} recorded", markup=False)


@contacts_app.command("show")
def show(person: int = typer.Argument(..., help="Person id.")) -> None:
    """Show one person: identifiers, consent, sources, timeline."""
    with runtime() as rt:
        detail = service.contact_detail(rt.engine, person)
    console.print(
        f"person {detail['id']} ({detail['status']}): {detail['first_name'] or ''} {detail['last_name'] or ''}",
        markup=False,
    )
    for ident in detail["identifiers"]:
        console.print(f"  {ident['kind']}: {ident['value']}  (key {ident['key']})", markup=False)
    for key, verdict in detail["consent"].items():
        console.print(f"  {key}: {'allowed' if verdict['allowed'] else 'blocked'} ({verdict['reason']})", markup=False)


@contacts_app.command("list")
def list_(query: str = typer.Argument("", help="Search names and identifiers."), limit: int = 50) -> None:
    """List people, optionally matching a search."""
    with runtime() as rt:
        total, rows = service.search_contacts(rt.engine, query, limit=limit)
    for row in rows:
        name = f"{row['first_name'] or ''} {row['last_name'] or ''}".strip()
        console.print(f"{row['id']}\t{name}\t{', '.join(row['identifiers'])}", markup=False)
    console.print(f"{len(rows)} of {total}")


def register(app: typer.Typer) -> None:
    app.add_typer(contacts_app, name="contacts")
