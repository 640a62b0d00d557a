"""The delivery service: accept a send (idempotently, committed before 202) and plan it into the ledger."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.contacts.phone_lookup import phone_owner
from herald.contacts.service import ContactInput, resolve_contact
from herald.contacts.store import get_person
from herald.core.channels import CHANNELS, MESSAGE_CLASSES, PARTS, MessageClass
from herald.core.errors import ConflictError, HeraldError, InvalidInputError
from herald.db.delivery_tables import idempotency_keys
from herald.db.engine import dialect_insert
from herald.db.runtime import Runtime, instance_secret
from herald.delivery import breaker, ledger
from herald.delivery.bulk_plan import load_recipients, plan_rules, recent_sends
from herald.delivery.planner import (
    Content,
    PlannedMessage,
    Request,
    Skip,
    plan_message,
)
from herald.delivery.settings import DeliverySettings, delivery_settings
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


def _check_key(key: str | None) -> str:
    if not key or len(key) > 255 or not key.isprintable():
        raise IdempotencyKeyRequiredError("Send an Idempotency-Key header (1-255 printable characters).")
    return key


def _replay(conn: sa.Connection, principal: str, key: str, digest: str) -> Submitted | None:
    stored = (
        conn.execute(
            sa.select(idempotency_keys).where(idempotency_keys.c.principal == principal, idempotency_keys.c.key == key)
        )
        .mappings()
        .first()
    )
    if stored is None:
        return None
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
    key = _check_key(idempotency_key)
    digest = request_hash(payload)
    _validate(request)
    delivery = delivery or delivery_settings(runtime)
    secret = _tombstone_secret(runtime)
    message_key = request.message_key or f"idem:{principal}:{key}"
    try:
        with runtime.engine.begin() as conn:
            replay = _replay(conn, principal, key, digest)
            if replay is not None:
                return replay
            now = runtime.clock.now()
            person_id = _resolve_recipient(conn, runtime, request, secret, now)
            planned, version = _plan(conn, runtime, person_id, request, delivery, now)
            new = _new_message(person_id, message_key, request, planned, version, now)
            enqueued = ledger.enqueue(conn, new, now)
            body = _accepted_body(conn, enqueued, new)
            if not _store_key(conn, principal, key, digest, body, enqueued.id, now):
                raise _LostRace
    except _LostRace:
        with runtime.engine.connect() as conn:
            replay = _replay(conn, principal, key, digest)
        assert replay is not None
        return replay
    return Submitted(ACCEPTED, body)


_secrets: dict[int, tuple[sa.Engine, str]] = {}


def _tombstone_secret(runtime: Runtime) -> str:
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


def _validate(request: SendRequest) -> None:
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
    if request.contact_id is not None:
        person = get_person(conn, request.contact_id)
        while person["status"] == "merged" and person["merged_into_id"]:
            person = get_person(conn, person["merged_into_id"])
        if person["status"] != "active":
            raise ConflictError(f"Person {request.contact_id} is {person['status']}.", id=request.contact_id)
        return int(person["id"])
    if request.phone is not None:
        # A number typed as `contacts list` shows it belongs to the person whose country reads it that way.
        owner = phone_owner(conn, request.phone, runtime.settings.default_region)
        if owner is not None:
            return owner
    data = ContactInput(
        emails=[request.email] if request.email else [],
        phones=[request.phone] if request.phone else [],
        handles=[request.handle] if request.handle else [],
    )
    person_id, _ = resolve_contact(
        conn, now, data, default_region=runtime.settings.default_region, secret=secret, source="messages"
    )
    return person_id


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
    content = Content(template=template, inline=request.content, variables=request.variables)
    plan_request = Request(MessageClass(request.message_class), tuple(request.channels), now, request.not_before)
    version = template.version if template is not None else None
    return plan_message(plan_request, recipient, content, rules, recent), version


def _new_message(
    person_id: int,
    message_key: str,
    request: SendRequest,
    planned: PlannedMessage | Skip,
    template_version: int | None,
    now: dt.datetime,
) -> ledger.NewMessage:
    if isinstance(planned, Skip):
        # Nothing can go, but the row still records the decision (and keeps the key taken).
        return ledger.NewMessage(
            person_id=person_id,
            message_key=message_key,
            message_class=request.message_class,
            status="held",
            channels=list(request.channels),
            addresses={},
            content={},
            available_at=now,
            hold_reason=planned.reason,
            skips=[{"channel": c, "reason": r} for c, r in planned.skips],
            template_id=request.template_id,
            template_version=template_version,
        )
    return ledger.NewMessage(
        person_id=person_id,
        message_key=message_key,
        message_class=request.message_class,
        status=planned.status,
        channels=planned.channels,
        addresses=planned.addresses,
        content=planned.content,
        available_at=planned.available_at,
        zones=planned.zones,
        zone_source=planned.zone_source,
        hold_reason=planned.hold_reason,
        releasable=planned.releasable,
        skips=[{"channel": c, "reason": r} for c, r in planned.skips],
        template_id=request.template_id,
        template_version=template_version,
        quiet_zone=planned.quiet_zone,
        quiet_window=planned.quiet_window,
    )


def _accepted_body(conn: sa.Connection, enqueued: ledger.Enqueued, new: ledger.NewMessage) -> dict[str, Any]:
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
    statement = (
        dialect_insert(conn, idempotency_keys)
        .values(
            principal=principal,
            key=key,
            request_hash=digest,
            status_code=ACCEPTED,
            response=body,
            message_id=message_id,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["principal", "key"])
        .returning(idempotency_keys.c.id)
    )
    return conn.execute(statement).scalar() is not None


# --- reading -----------------------------------------------------------------------------------------


def provider_health(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.engine.connect() as conn:
        return breaker.list_health(conn)
