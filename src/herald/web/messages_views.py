"""Messages pages: the filterable ledger list and one message (content, attempts, receipts, why it is held)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from herald.contacts import service as contacts
from herald.core.channels import CHANNELS, MESSAGE_CLASSES
from herald.core.errors import HeraldError, InvalidInputError, NotFoundError
from herald.core.inputs import Id, Text
from herald.db.engine import Engine
from herald.delivery import queries, unconfirmed
from herald.delivery.reasons import REASON_KINDS, describe_reason
from herald.web.contacts_views import StaffDep
from herald.web.deps import CSRF, SignedIn, SignedInDep, begin, get_runtime
from herald.web.render import FormErrors, redirect, render

router = APIRouter(prefix="/messages")
PAGE_SIZE = 50

# Every role may read these pages: admins and marketers watch sending, and agents answering a customer need
# to see what was sent to them and why something was held. Re-sending a sent_unconfirmed message (the one
# action here) sends mail, so it is for admins and marketers, like other work that changes data.
STAFF = ("admin", "marketer")


def status_badge(status: str) -> str:
    """The badge colour for a ledger status, shared with the person page's timeline."""
    if status in ("sent", "delivered"):
        return "badge-ok"
    if status == "failed":
        return "badge-danger"
    if status in ("held", "sent_unconfirmed"):
        return "badge-warn"
    return "badge-info"


def _blank(value: str) -> str | None:
    value = value.strip()
    return value or None


def _person(value: str) -> int | None:
    """The `person` filter from a query string, where an empty field means no filter."""
    text = value.strip()
    if not text:
        return None
    if not text.isdecimal() or not 0 < int(text) < 2**63:
        raise InvalidInputError("person must be a person's id (a whole number).", field="person", value=value)
    return int(text)


@router.get("")
def messages_page(
    request: Request,
    signed_in: SignedInDep,
    status: Annotated[Text, Query(max_length=16)] = "",
    channel: Annotated[Text, Query(max_length=16)] = "",
    message_class: Annotated[Text, Query(alias="class", max_length=16)] = "",
    reason: Annotated[Text, Query(max_length=64)] = "",
    person: Annotated[Text, Query(max_length=20)] = "",
    page: Annotated[Id, Query(le=1_000_000)] = 1,
) -> Response:
    chosen = {"status": status, "channel": channel, "class": message_class, "reason": reason, "person": person}
    errors = FormErrors()
    found = queries.MessagePage(0, [])
    engine = get_runtime(request).engine
    try:
        filters = queries.MessageFilter(
            status=_blank(status),
            channel=_blank(channel),
            message_class=_blank(message_class),
            reason=_blank(reason),
            person_id=_person(person),
        )
        found = queries.list_messages(engine, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except InvalidInputError as exc:
        errors.add(exc)
    active = {key: value.strip() for key, value in chosen.items() if value.strip()}
    context = {
        "title": "Messages",
        "messages": _rows(engine, found.messages),
        "total": found.total,
        "page": page,
        "last_page": max(1, -(-found.total // PAGE_SIZE)),
        "first_shown": (page - 1) * PAGE_SIZE + 1 if found.messages else 0,
        "last_shown": (page - 1) * PAGE_SIZE + len(found.messages),
        "chosen": chosen,
        "filtered": bool(active),
        "query": urlencode(active),
        "statuses": queries.STATUSES,
        "channels": CHANNELS,
        "classes": MESSAGE_CLASSES,
        "reasons": REASON_KINDS,
        "errors": errors,
    }
    return render(request, "messages.html", context, status_code=400 if errors else 200)


def _rows(engine: Engine, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = contacts.display_names(engine, [row["person_id"] for row in rows])
    return [
        row
        | {
            "badge": status_badge(row["status"]),
            "reason_text": describe_reason(row["hold_reason"]),
            "recipient": names.get(row["person_id"]) or f"Person {row['person_id']}",
        }
        for row in rows
    ]


@router.get("/{message_id}")
def message_page(
    request: Request,
    signed_in: SignedInDep,
    message_id: Id,
    notice: Annotated[Text, Query(max_length=32)] = "",
) -> Response:
    return _message_page(request, signed_in, message_id, notice=notice)


@router.post("/{message_id}/resend", dependencies=CSRF)
def resend(request: Request, signed_in: StaffDep, message_id: Id) -> Response:
    """Re-send a sent_unconfirmed message (same Message-ID); any other status gets the page back with why."""
    try:
        with begin(request, signed_in) as uow:
            unconfirmed.resend_message(uow, message_id)
    except NotFoundError:
        return _not_found(request, message_id)
    except HeraldError as exc:
        return _message_page(request, signed_in, message_id, error=exc.message, status_code=exc.http_status)
    return redirect(request, f"/messages/{message_id}?notice=resend")


def _not_found(request: Request, message_id: int) -> Response:
    return render(
        request,
        "error.html",
        {"title": "Not found", "message": f"There is no message with id {message_id}."},
        status_code=404,
    )


def _message_page(
    request: Request,
    signed_in: SignedIn,
    message_id: int,
    *,
    notice: str = "",
    error: str = "",
    status_code: int = 200,
) -> Response:
    engine = get_runtime(request).engine
    try:
        detail = queries.message_detail(engine, message_id, include_content=True)
    except NotFoundError:
        return _not_found(request, message_id)
    person_id = detail["person_id"]
    label = contacts.display_names(engine, [person_id]).get(person_id) or f"Person {person_id}"
    context = {
        "title": f"Message {message_id}",
        "message": detail,
        "badge": status_badge(detail["status"]),
        "reason_text": describe_reason(detail["hold_reason"]),
        "recipient": {"id": person_id, "label": label},
        "skips": [_skip(skip) for skip in detail["skips"] or ()],
        "content": _content(detail.get("content") or {}, detail["channels"] or []),
        "history": queries.message_history(detail),
        "can_resend": detail["status"] == "sent_unconfirmed" and signed_in.user.role in STAFF,
        "notice": "Queued again: its attempt goes out with the same Message-ID." if notice == "resend" else "",
        "error": error,
    }
    return render(request, "message.html", context, status_code=status_code)


def _skip(skip: dict[str, Any]) -> dict[str, Any]:
    return skip | {"text": describe_reason(skip.get("reason")), "at": queries.parse_at(skip.get("at"))}


def _content(content: dict[str, Any], channels: list[str]) -> list[dict[str, Any]]:
    """Rendered parts per channel in plan order; a webhook payload as indented JSON text (escaped on output)."""
    out = []
    for channel in [*channels, *(c for c in content if c not in channels)]:
        parts = content.get(channel)
        if not parts:
            continue
        item = {"channel": channel, **parts}
        if "payload" in parts:
            item["payload"] = json.dumps(parts["payload"], indent=2, ensure_ascii=False, sort_keys=True)
        out.append(item)
    return out
