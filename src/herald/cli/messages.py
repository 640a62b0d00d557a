"""`herald messages send|show`: the same send as POST /api/messages, and one message's ledger row."""

from __future__ import annotations

import json
from typing import Any

import typer

from herald.cli.common import console, runtime
from herald.delivery import queries, service

messages_app = typer.Typer(help="Send a message through the ledger, or show one.", no_args_is_help=True)


def _print_json(value: Any, indent: int | None = None) -> None:
    # Data, not rich markup: "[b]" in content or ":key:" in a message key must come out as written.
    console.print(json.dumps(value, default=str, indent=indent), markup=False, emoji=False)


def _recipient(to: str) -> dict[str, Any]:
    return {"email": to} if "@" in to else {"phone": to}


@messages_app.command("send")
def send(
    to: str = typer.Option(..., "--to", help="E-mail address or phone number (created as a contact if new)."),
    channel: list[str] = typer.Option(["email"], "--channel", help="Channel plan, in order; repeat for failover."),
    subject: str | None = typer.Option(None, "--subject", help="E-mail subject."),
    text: str | None = typer.Option(None, "--text", help="E-mail text, or the SMS/WhatsApp body / voice text."),
    html: str | None = typer.Option(None, "--html", help="E-mail HTML part."),
    template: str | None = typer.Option(None, "--template", help="A stored template id instead of inline text."),
    variable: list[str] = typer.Option([], "--var", help="Template variable NAME=VALUE (repeatable)."),
    message_class: str = typer.Option("transactional", "--class", help="marketing | transactional | incident"),
    idempotency_key: str = typer.Option(..., "--idempotency-key", help="The same key twice sends once."),
    message_key: str | None = typer.Option(None, "--message-key", help="Dedup key per person (default: the key)."),
) -> None:
    """Plan and enqueue one message; prints the message id once the ledger row is committed."""
    content: dict[str, dict[str, Any]] = {}
    for name in channel:
        if name == "email":
            content["email"] = {k: v for k, v in {"subject": subject, "text": text, "html": html}.items() if v}
        elif name in {"sms", "whatsapp"}:
            content[name] = {"body": text}
        elif name == "voice":
            content[name] = {"text": text}
    variables = dict(item.split("=", 1) for item in variable)
    payload: dict[str, Any] = {
        **_recipient(to),
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
        email=to if "@" in to else None,
        phone=None if "@" in to else to,
        template_id=template,
        variables=variables,
        content={} if template else content,
        message_key=message_key,
    )
    with runtime() as rt:
        result = service.submit_message(rt, "cli", idempotency_key, payload, request)
    _print_json(result.body)


@messages_app.command("show")
def show(message_id: int = typer.Argument(..., help="The message id.")) -> None:
    """The ledger row, its attempts and receipts, as JSON."""
    with runtime() as rt:
        detail = queries.message_detail(rt.engine, message_id)
    _print_json(detail, indent=2)


def register(app: typer.Typer) -> None:
    app.add_typer(messages_app, name="messages")
