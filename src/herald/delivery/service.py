"""The delivery service: accept a send (idempotently, committed before 202) and plan it into the ledger."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.contacts.matching import Incoming
from herald.contacts.phone_lookup import phone_owner
from herald.contacts.service import ContactInput, resolve_incoming, to_incoming
from herald.contacts.store import people_by_id
from herald.core.channels import CHANNELS, MESSAGE_CLASSES, PARTS, MessageClass
from herald.core.errors import ConflictError, HeraldError, InvalidInputError, NotFoundError
from herald.db.bulk import insert_returning
from herald.db.delivery_tables import idempotency_keys
from herald.db.runtime import Runtime, instance_secret
from herald.delivery import breaker, ledger
from herald.delivery.bulk_plan import ledger_row, load_recipients, plan_rules, recent_sends
from herald.delivery.planner import (
    Content,
    PlannedMessage,
    Recipient,
    Request,
    Rules,
    Skip,
    plan_message,
)
from herald.delivery.settings import DeliverySettings, delivery_settings
from herald.schedule.caps import SendRecord
from herald.templates.render import TemplateSpec, compile_template
from herald.templates.store import load_template

ACCEPTED = 202


class IdempotencyConflictError(ConflictError):
    code = "idempotency_conflict"


class IdempotencyKeyRequiredError(HeraldError):
    code = "idempotency_key_required"
    http_status = 400


@dataclass(frozen=True, slots=True)
class SendRequest:
    message_class: str
    channels: Sequence[str]
    contact_id: int | None = None
    email: str | None = None
    phone: str | None = None
    handle: str | None = None
    template_id: str | None = None
    template_version: int | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    content: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    not_before: dt.datetime | None = None
    message_key: str | None = None


@dataclass(frozen=True, slots=True)
class Submitted:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class _LostRace(Exception):
    """Another request with the same idempotency key committed first."""


def request_hash(payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_key(key: str | None) -> str:
    if not key or len(key) > 255 or not key.isprintable():
        raise IdempotencyKeyRequiredError("Send an Idempotency-Key header (1-255 printable characters).")
    return key


def _replay(conn: sa.Connection, principal: str, key: str, digest: str) -> Submitted | None:
    stored = stored_keys(conn, principal, [key]).get(key)
    return None if stored is None else replay_of(stored, key, digest)


def stored_keys(conn: sa.Connection, principal: str, keys: Sequence[str]) -> dict[str, Mapping[str, Any]]:
    """The idempotency records of this principal among `keys` (one query per 900 keys)."""
    c = idempotency_keys.c
    wanted = list(dict.fromkeys(keys))
    found: dict[str, Mapping[str, Any]] = {}
    for start in range(0, len(wanted), 900):  # bounded bind variables (SQLite)
        query = sa.select(c.key, c.request_hash, c.status_code, c.response).where(
            c.principal == principal, c.key.in_(wanted[start : start + 900])
        )
        found.update({row["key"]: row for row in conn.execute(query).mappings()})
    return found


def replay_of(stored: Mapping[str, Any], key: str, digest: str) -> Submitted:
    """The stored answer to a repeated request; the same key with a different request is a conflict."""
    if stored["request_hash"] != digest:
        raise IdempotencyConflictError(
            "This Idempotency-Key was already used with a different request.", idempotency_key=key
        )
    return Submitted(stored["status_code"], dict(stored["response"]), replayed=True)


def submit_message(
    runtime: Runtime,
    principal: str,
    idempotency_key: str | None,
    payload: Mapping[str, Any],
    request: SendRequest,
    delivery: DeliverySettings | None = None,
) -> Submitted:
    """Plan and enqueue one message; the ledger row and the idempotency record commit together, then we answer.

    One transaction for everything (replay check, recipient, planning, ledger row, key): on SQLite every
    transaction takes the single write lock, so fewer of them per request is what lets intake scale.
    """
    key = check_key(idempotency_key)
    digest = request_hash(payload)
    validate_request(request)
    delivery = delivery or delivery_settings(runtime)
    secret = tombstone_secret(runtime)
    message_key = request.message_key or f"idem:{principal}:{key}"
    for attempt in range(NEW_CONTACT_RETRIES):
        try:
            with runtime.engine.begin() as conn:
                replay = _replay(conn, principal, key, digest)
                if replay is not None:
                    return replay
                now = runtime.clock.now()
                person_id = _resolve_recipient(conn, runtime, request, secret, now)
                planned, version = _plan(conn, runtime, person_id, request, delivery, now)
                new = new_message(person_id, message_key, request, planned, version, now)
                enqueued = ledger.enqueue(conn, new, now)
                body = accepted_body(conn, enqueued, new)
                if not _store_key(conn, principal, key, digest, body, enqueued.id, now):
                    raise _LostRace
            return Submitted(ACCEPTED, body)
        except _LostRace:
            with runtime.engine.connect() as conn:
                replay = _replay(conn, principal, key, digest)
            assert replay is not None
            return replay
        except sa.exc.IntegrityError:
            # A concurrent request created the contact for the same new address first (the identifier's
            # unique key): nothing was kept; the next attempt finds that person.
            if attempt == NEW_CONTACT_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


NEW_CONTACT_RETRIES = 3


_secrets: dict[int, tuple[sa.Engine, str]] = {}


def tombstone_secret(runtime: Runtime) -> str:
    """The installation's tombstone secret (never changes once made): read once per engine, not per request."""
    cached = _secrets.get(id(runtime.engine))
    if cached is None or cached[0] is not runtime.engine:
        try:
            secret = instance_secret(runtime.engine, "tombstone")
        except sa.exc.IntegrityError:
            # Concurrent first requests on a new installation race to create it; the winner's value stands.
            secret = instance_secret(runtime.engine, "tombstone")
        cached = _secrets[id(runtime.engine)] = (runtime.engine, secret)
    return cached[1]


def validate_request(request: SendRequest) -> None:
    """Everything about a send that needs no database: class, channels, one recipient, content, not_before."""
    if request.message_class not in MESSAGE_CLASSES:
        raise InvalidInputError(f"class must be one of {', '.join(MESSAGE_CLASSES)}", field="class")
    unknown = [c for c in request.channels if c not in CHANNELS]
    if unknown or not request.channels:
        raise InvalidInputError(f"channels must be a non-empty list of {', '.join(CHANNELS)}", field="channels")
    given = [v for v in (request.contact_id, request.email, request.phone, request.handle) if v is not None]
    if len(given) != 1:
        raise InvalidInputError("Name the recipient with exactly one of contact_id, email, phone, handle.", field="to")
    if (request.template_id is None) == (not request.content):
        raise InvalidInputError("Give either template_id or inline content.", field="content")
    if request.not_before is not None and request.not_before.tzinfo is None:
        raise InvalidInputError("not_before needs a time zone (e.g. 2026-11-23T09:00:00Z).", field="not_before")
    _vet_inline(request)


def _vet_inline(request: SendRequest) -> None:
    """Compile inline content before any database work: a broken or over-budget template (template_invalid,
    template_unsafe) is refused at once, whoever the recipient. Planning renders the same compiled parts."""
    parts = {
        part: str(value)
        for channel in request.channels
        for field, part in PARTS.get(channel, {}).items()
        if (value := request.content.get(channel, {}).get(field))
    }
    if parts:
        compile_template(TemplateSpec(id="inline", version=0, parts=parts))


def _resolve_recipient(
    conn: sa.Connection, runtime: Runtime, request: SendRequest, secret: str, now: dt.datetime
) -> int:
    found = resolve_recipients(conn, [request], default_region=runtime.settings.default_region, secret=secret, now=now)
    if isinstance(found[0], HeraldError):
        raise found[0]
    return found[0]


def resolve_recipients(
    conn: sa.Connection, requests: Sequence[SendRequest], *, default_region: str, secret: str, now: dt.datetime
) -> list[int | HeraldError]:
    """The person each request is for, in order, or why not (each request's own error, never the batch's).

    A contact id is followed through merges and must end at an active person; an address finds its person
    or creates one (all of them in one resolver pass, so the same new address twice is one new person).
    """
    found: list[int | HeraldError] = [NotFoundError("no recipient")] * len(requests)
    by_id = _active_people(conn, {r.contact_id for r in requests if r.contact_id is not None})
    records: list[tuple[int, Incoming]] = []
    for index, request in enumerate(requests):
        if request.contact_id is not None:
            found[index] = by_id[request.contact_id]
            continue
        try:
            if request.phone is not None:
                # A number typed as `contacts list` shows it belongs to the person whose country reads it that way.
                owner = phone_owner(conn, request.phone, default_region)
                if owner is not None:
                    found[index] = owner
                    continue
            data = ContactInput(
                emails=[request.email] if request.email else [],
                phones=[request.phone] if request.phone else [],
                handles=[request.handle] if request.handle else [],
            )
            records.append((index, to_incoming(data, default_region)))
        except HeraldError as exc:
            found[index] = exc
    if not records:
        return found
    person_ids = resolve_incoming(conn, now, [record for _, record in records], secret=secret, source="messages")
    for (index, _), person_id in zip(records, person_ids, strict=True):
        found[index] = person_id
    return found


def _active_people(conn: sa.Connection, ids: set[int]) -> dict[int, int | HeraldError]:
    """Each asked id → the active person it is now (merges followed), or NotFound / Conflict."""
    out: dict[int, int | HeraldError] = {}
    pending = {asked: asked for asked in ids}  # asked → where its merge chain has got to
    while pending:
        rows = people_by_id(conn, pending.values())
        following: dict[int, int] = {}
        for asked, current in pending.items():
            row = rows.get(current)
            if row is None:
                out[asked] = NotFoundError(f"No person with id {current}.", id=current)
            elif row["status"] == "merged" and row["merged_into_id"]:
                following[asked] = int(row["merged_into_id"])
            elif row["status"] != "active":
                out[asked] = ConflictError(f"Person {asked} is {row['status']}.", id=asked)
            else:
                out[asked] = current
        pending = following
    return out


def _plan(
    conn: sa.Connection,
    runtime: Runtime,
    person_id: int,
    request: SendRequest,
    delivery: DeliverySettings,
    now: dt.datetime,
) -> tuple[PlannedMessage | Skip, int | None]:
    rules = plan_rules(runtime, delivery)
    recipient = load_recipients(conn, [person_id])[person_id]
    template = load_template(conn, request.template_id, request.template_version) if request.template_id else None
    recent = recent_sends(conn, [person_id], now)[person_id] if rules.caps else ()
    version = template.version if template is not None else None
    return plan_send(request, recipient, template, rules, recent, now), version


def plan_send(
    request: SendRequest,
    recipient: Recipient,
    template: TemplateSpec | None,
    rules: Rules,
    recent: Sequence[SendRecord],
    now: dt.datetime,
) -> PlannedMessage | Skip:
    """The pure planner applied to one send request (single and batch intake alike)."""
    content = Content(template=template, inline=request.content, variables=request.variables)
    plan_request = Request(MessageClass(request.message_class), tuple(request.channels), now, request.not_before)
    return plan_message(plan_request, recipient, content, rules, recent)


def new_message(
    person_id: int,
    message_key: str,
    request: SendRequest,
    planned: PlannedMessage | Skip,
    template_version: int | None,
    now: dt.datetime,
) -> ledger.NewMessage:
    return ledger_row(
        planned,
        person_id=person_id,
        message_key=message_key,
        message_class=request.message_class,
        channels=request.channels,
        now=now,
        template_id=request.template_id,
        template_version=template_version,
    )


def accepted_body(conn: sa.Connection, enqueued: ledger.Enqueued, new: ledger.NewMessage) -> dict[str, Any]:
    if enqueued.created:
        # The row is exactly what we just inserted: no need to read it back.
        return {
            "id": enqueued.id,
            "status": new.status,
            "hold_reason": new.hold_reason,
            "available_at": new.available_at.astimezone(dt.UTC).isoformat(),
            "channels": list(new.channels),
            "skips": [dict(s) for s in new.skips],
            "duplicate": False,
        }
    row = ledger.get_message(conn, enqueued.id)
    assert row is not None
    return {
        "id": row["id"],
        "status": row["status"],
        "hold_reason": row["hold_reason"],
        "available_at": row["available_at"].isoformat(),
        "channels": list(row["channels"]),
        "skips": list(row["skips"]),
        "duplicate": True,
    }


def _store_key(
    conn: sa.Connection, principal: str, key: str, digest: str, body: dict[str, Any], message_id: int, now: dt.datetime
) -> bool:
    return bool(store_keys(conn, principal, [StoredKey(key, digest, body, message_id)], now))


@dataclass(frozen=True, slots=True)
class StoredKey:
    key: str
    request_hash: str
    response: Mapping[str, Any]  # the 202 body a replay answers with
    message_id: int


def store_keys(conn: sa.Connection, principal: str, records: Sequence[StoredKey], now: dt.datetime) -> set[str]:
    """Record accepted requests' keys with their answers (one multi-row insert); returns the keys stored.
    A key missing from the result was stored first by a concurrent request: the caller must roll back."""
    inserted = insert_returning(
        conn,
        idempotency_keys,
        ("principal", "key", "request_hash", "status_code", "response", "message_id", "created_at"),
        [(principal, r.key, r.request_hash, ACCEPTED, dict(r.response), r.message_id, now) for r in records],
        conflict=("principal", "key"),
        returning=("key",),
    )
    return {str(key) for (key,) in inserted}


# --- reading -----------------------------------------------------------------------------------------


def provider_health(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        return breaker.list_health(conn)
