"""Contacts pages: search and page through people, and one person's full record and timeline."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from herald.consent.policy import CHANNELS, PURPOSES
from herald.contacts import service
from herald.core.errors import NotFoundError
from herald.core.inputs import Id, Text
from herald.delivery import queries
from herald.delivery.reasons import describe_reason
from herald.web.deps import SignedIn, SignedInDep, get_runtime, require_role
from herald.web.render import render

router = APIRouter(prefix="/contacts")
PAGE_SIZE = 50
# Messages shown in a person's timeline; past this many the page links to Messages filtered to them.
TIMELINE_MESSAGES = 200

# Contact work that changes data (imports, merges, exports, backups) is for admins and marketers.
StaffDep = Annotated[SignedIn, Depends(require_role("admin", "marketer"))]


def not_found(request: Request, message: str) -> Response:
    return render(request, "error.html", {"title": "Not found", "message": message}, status_code=404)


def full_name(person: dict[str, Any]) -> str:
    return " ".join(part for part in (person.get("first_name"), person.get("last_name")) if part)


@router.get("")
def contacts_page(
    request: Request,
    signed_in: SignedInDep,
    q: Annotated[Text, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    total, rows = service.search_contacts(
        get_runtime(request).engine, q, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    last_page = max(1, -(-total // PAGE_SIZE))
    context = {
        "title": "Contacts",
        "q": q,
        "people": [row | {"name": full_name(row)} for row in rows],
        "total": total,
        "page": page,
        "last_page": last_page,
        "first_shown": (page - 1) * PAGE_SIZE + 1 if rows else 0,
        "last_shown": (page - 1) * PAGE_SIZE + len(rows),
    }
    return render(request, "contacts.html", context)


def consent_grid(consent: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows per channel with one verdict per purpose, in the policy's order."""
    return [
        {"channel": channel, "cells": [consent.get(f"{channel}:{purpose}") for purpose in PURPOSES]}
        for channel in CHANNELS
    ]


def message_event(message: dict[str, Any]) -> dict[str, Any]:
    """A ledger row as a timeline entry that links to its message page."""
    held = message["status"] == "held"
    what = message["summary"] or ("(nothing rendered)" if held else "(no content)")
    return {
        "at": message["created_at"],
        "kind": f"message.{message['status']}",
        "detail": f"{message['message_class']} via {' → '.join(message['channels'])}: {what}",
        "reason": describe_reason(message["hold_reason"]),
        "href": f"/messages/{message['id']}",
        # A quiet-hours hold is routine; a hold that will not end by itself, or a failure, needs a look.
        "bad": message["status"] == "failed" or (held and not message["releasable"]),
    }


@router.get("/{person_id}")
def person_page(request: Request, signed_in: SignedInDep, person_id: Id) -> Response:
    try:
        person = service.contact_detail(get_runtime(request).engine, person_id)
    except NotFoundError:
        return not_found(request, f"There is no person with id {person_id}.")
    sent = queries.messages_for_person(get_runtime(request).engine, person_id, limit=TIMELINE_MESSAGES)
    timeline = sorted(
        [*person["timeline"], *(message_event(m) for m in sent.messages)], key=lambda i: i["at"], reverse=True
    )
    context = {
        "title": full_name(person) or f"Person {person_id}",
        "person": person,
        "name": full_name(person),
        "purposes": PURPOSES,
        "consent_rows": consent_grid(person["consent"]),
        "timeline": timeline,
        "messages_total": sent.total,
        "messages_shown": len(sent.messages),
    }
    return render(request, "person.html", context)
