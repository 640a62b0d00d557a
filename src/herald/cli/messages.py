"""`herald messages send|send-batch|list|show|resend`: POST /api/messages (and /batch), GET /api/messages[/{id}],
POST /api/messages/{id}/resend."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from herald.api.routes.messages import batch_item
from herald.cli.common import begin, console, err_console, runtime, show_progress
from herald.core.channels import CHANNELS, MESSAGE_CLASSES, PARTS
from herald.core.errors import InvalidInputError
from herald.delivery import batch, heartbeat, queries, service, unconfirmed
from herald.delivery.planner import CONTACT_FIELDS
from herald.delivery.reasons import describe_reason

messages_app = typer.Typer(
    help="Send a message through the ledger, list or show them, re-send an unconfirmed one.", no_args_is_help=True
)

TEMPLATE_NAMES_HELP = (
    "Templates (and inline text) can use the recipient's fields by their short name or under contact.: "
    + ", ".join(f"{{{{ {name} }}}}" for name in CONTACT_FIELDS)
    + " (= {{ contact.first_name }} …), and every custom attribute by its own name. "
    "A --var with the same name wins over the contact's field."
)
WORKER_HINT = "no worker is running: start `herald worker` or `herald serve` to deliver it"


def _print_json(value: Any, indent: int | None = None) -> None:
    # Data, not rich markup: "[b]" in content or ":key:" in a message key must come out as written.
    console.print(json.dumps(value, default=str, indent=indent), markup=False, emoji=False)


def _recipient(to: str) -> dict[str, Any]:
    return {"email": to} if "@" in to else {"phone": to}


def _content(channel: list[str], subject: str | None, text: str | None, html: str | None) -> dict[str, dict[str, Any]]:
    """Each rendered channel's content fields (herald.core.channels.PARTS) from the flags: --subject and --html
    fill the fields of those names, --text every other one (the e-mail text, an SMS body, a voice text)."""
    given = {"subject": subject, "text": text, "html": html}
    content: dict[str, dict[str, Any]] = {}
    for name in channel:
        fields = PARTS.get(name)
        if fields is None:
            continue  # a webhook's payload is JSON: the API carries it, these flags cannot
        if len(fields) == 1:
            content[name] = {field: given.get(field, text) for field in fields}
        else:
            content[name] = {field: value for field in fields if (value := given.get(field, text))}
    return content


def _variables(items: list[str]) -> dict[str, str]:
    bad = [item for item in items if "=" not in item or not item.split("=", 1)[0].strip()]
    if bad:
        raise typer.BadParameter(f"expected NAME=VALUE, got {bad[0]!r}", param_hint="--var")
    return dict(item.split("=", 1) for item in items)


@messages_app.command("send", epilog=TEMPLATE_NAMES_HELP)
def send(
    to: str | None = typer.Option(
        None,
        "--to",
        help="E-mail address or phone number (created as a contact if new). A phone number may be written as "
        "`contacts list` shows it: national numbers are read with the person's country.",
    ),
    person: int | None = typer.Option(
        None, "--person", help="An existing person's id: each channel uses that person's address for it."
    ),
    channel: list[str] = typer.Option(
        ["email"], "--channel", help=f"Channel plan, in order; repeat for failover ({', '.join(CHANNELS)})."
    ),
    subject: str | None = typer.Option(None, "--subject", help="E-mail subject."),
    text: str | None = typer.Option(None, "--text", help="E-mail text, or the SMS/WhatsApp body / voice text."),
    html: str | None = typer.Option(None, "--html", help="E-mail HTML part."),
    template: str | None = typer.Option(None, "--template", help="A stored template id instead of inline text."),
    variable: list[str] = typer.Option(
        [], "--var", help="Template variable NAME=VALUE (repeatable); wins over a contact field of the same name."
    ),
    message_class: str = typer.Option("transactional", "--class", help=" | ".join(MESSAGE_CLASSES)),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="The same key twice sends once (default: a new key, printed on stderr)."
    ),
    message_key: str | None = typer.Option(None, "--message-key", help="Dedup key per person (default: the key)."),
) -> None:
    """Plan and enqueue one message; prints the message id once the ledger row is committed."""
    if (to is None) == (person is None):
        raise typer.BadParameter("name the recipient with exactly one of --to or --person", param_hint="--to")
    content = _content(channel, subject, text, html)
    variables = _variables(variable)
    recipient: dict[str, Any] = {"contact_id": person} if person is not None else _recipient(to or "")
    payload: dict[str, Any] = {
        **recipient,
        "class": message_class,
        "channels": channel,
        "content": None if template else content,
        "template_id": template,
        "variables": variables,
        "message_key": message_key,
    }
    request = service.SendRequest(
        message_class=message_class,
        channels=channel,
        contact_id=person,
        email=recipient.get("email"),
        phone=recipient.get("phone"),
        template_id=template,
        variables=variables,
        content={} if template else content,
        message_key=message_key,
    )
    if idempotency_key is None:
        idempotency_key = f"cli-{uuid.uuid4().hex}"
        err_console.print(
            f"idempotency key: {idempotency_key} (to retry this send without a second copy, "
            f"add --idempotency-key {idempotency_key})",
            markup=False,
        )
    with runtime() as rt:
        result = service.submit_message(rt, "cli", idempotency_key, payload, request)
        waits_for_worker = result.body["status"] == "queued" or result.body["hold_reason"] == "quiet_hours"
        if waits_for_worker and not heartbeat.live_workers(rt):
            err_console.print(f"hint: {WORKER_HINT}", markup=False)
    _print_json(result.body)


@messages_app.command("send-batch")
def send_batch(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="JSON Lines: one POST /api/messages body per line."
    ),
) -> None:
    """Send every line of FILE (each a JSON message with its own `idempotency_key`), 1,000 per transaction.

    Lines are independent: a bad line is reported with its number and the others are sent. Running the same
    file again sends nothing twice (each line replays its key). Exit code 1 when any line failed.
    """
    items: list[tuple[int, batch.BatchItem]] = []
    with file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                items.append((number, _line_item(line)))
    failed = accepted = replayed = 0
    with runtime() as rt, _progress(len(items)) as advance:
        for start in range(0, len(items), batch.MAX_ITEMS):
            chunk = items[start : start + batch.MAX_ITEMS]
            result = batch.submit_batch(rt, "cli", [item for _, item in chunk])
            for (number, _), outcome in zip(chunk, result.results, strict=True):
                if outcome.error is not None:
                    failed += 1
                    message = f"line {number}: {outcome.status} {outcome.error.code}: {outcome.error.message}"
                    problems = outcome.error.fields.get("problems") or []
                    message += "".join(f" [{p['field']}: {p['message']}]" for p in problems)
                    err_console.print(message, markup=False)
                else:
                    accepted += 1
                    replayed += outcome.replayed
            advance(len(chunk))
    console.print(f"accepted {accepted} (replayed {replayed}), failed {failed}", markup=False)
    if failed:
        raise typer.Exit(1)


def _line_item(line: str) -> batch.BatchItem:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return batch.BatchItem(None, {}, None, error=InvalidInputError(f"not JSON: {exc.msg} (column {exc.colno})"))
    return batch_item(raw)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    if not show_progress():
        yield lambda _done: None
        return
    columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("sending", total=total)
        yield lambda done: bar.advance(task, done)


@messages_app.command("show")
def show(message_id: int = typer.Argument(..., help="The message id.")) -> None:
    """The ledger row (with the quiet-hours zone and window applied), its attempts and receipts, as JSON."""
    with runtime() as rt:
        detail = queries.message_detail(rt.engine, message_id)
    _print_json(detail, indent=2)


@messages_app.command("list")
def list_(
    status: str | None = typer.Option(None, "--status", help=" | ".join(queries.STATUSES)),
    channel: str | None = typer.Option(None, "--channel", help="A channel anywhere in the plan."),
    message_class: str | None = typer.Option(None, "--class", help=" | ".join(MESSAGE_CLASSES)),
    reason: str | None = typer.Option(None, "--reason", help="A hold or skip reason kind (quiet_hours, …)."),
    person: int | None = typer.Option(None, "--person", help="A person's id."),
    limit: int = typer.Option(50, "--limit", min=1, max=queries.MAX_LIMIT),
    offset: int = typer.Option(0, "--offset", min=0),
    as_json: bool = typer.Option(False, "--json", help="The same body as GET /api/messages."),
) -> None:
    """Messages newest first, filtered like GET /api/messages; the last line counts every match."""
    filters = queries.MessageFilter(
        status=status, channel=channel, message_class=message_class, reason=reason, person_id=person
    )
    with runtime() as rt:
        found = queries.list_messages(rt.engine, filters, limit=limit, offset=offset)
    if as_json:
        _print_json({"total": found.total, "limit": limit, "offset": offset, "messages": found.messages})
        return
    table = Table("id", "status", "class", "channel", "to", "summary", "why")
    for row in found.messages:
        why = describe_reason(row["hold_reason"]) or row.get("last_error") or ""
        cells = (row["message_class"], row["channel"] or "", row["address"] or "", row["summary"] or "", why)
        table.add_row(str(row["id"]), row["status"], *cells)
    if found.messages:
        console.print(table, markup=False, emoji=False)
    console.print(f"{found.total} message(s)", markup=False)


@messages_app.command("resend")
def resend(message_id: int = typer.Argument(..., help="A sent_unconfirmed message's id.")) -> None:
    """Re-send a sent_unconfirmed message: its attempt goes out again with the same Message-ID (audited)."""
    with runtime() as rt, begin(rt) as uow:
        result = unconfirmed.resend_message(uow, message_id)
    _print_json(result)


def register(app: typer.Typer) -> None:
    app.add_typer(messages_app, name="messages")
