"""Contacts service: the functions CLI, API and web call to read and change people."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import consent_summary, event_row, load_events, person_history, record_events
from herald.contacts.identity import EMAIL, HANDLE, PHONE, IdentifierError, make_identifier
from herald.contacts.matching import Incoming
from herald.contacts.merge import merge_people, unmerge
from herald.contacts.resolve import Resolver
from herald.contacts.store import get_person, identifiers_of
from herald.contacts.survivorship import SCALAR_FIELDS
from herald.core.clock import Clock
from herald.core.errors import InvalidInputError, NotFoundError
from herald.db.contacts_tables import identifiers, merges, people, source_records
from herald.db.engine import read_connection
from herald.db.runtime import instance_secret
from herald.db.unit_of_work import UnitOfWork


@dataclass
class ContactInput:
    emails: Sequence[str] = ()
    phones: Sequence[str] = ()
    handles: Sequence[str] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    consent: dict[str, str] = field(default_factory=dict)
    region: str | None = None


def to_incoming(data: ContactInput, default_region: str) -> Incoming:
    idents = []
    region = (data.region or data.fields.get("country") or default_region).upper()
    for kind, values in ((EMAIL, data.emails), (PHONE, data.phones), (HANDLE, data.handles)):
        for value in values:
            try:
                idents.append(make_identifier(kind, value, region))
            except IdentifierError as exc:
                raise InvalidInputError(exc.message, field=kind, reason=exc.reason) from exc
    if not idents:
        raise InvalidInputError("A contact needs at least one e-mail, phone or handle.", field="emails")
    unknown = set(data.fields) - {*SCALAR_FIELDS, "attributes", "tags"}
    if unknown:
        raise InvalidInputError(f"Unknown fields: {', '.join(sorted(unknown))}", field="fields")
    fields = dict(data.fields)
    if fields.get("timezone") and not fields.get("timezone_source"):
        fields["timezone_source"] = "contact"
    return Incoming(identifiers=idents, fields=fields, consent=dict(data.consent))


def upsert_contact(
    engine: sa.Engine, clock: Clock, data: ContactInput, *, default_region: str, source: str = "api"
) -> tuple[int, str]:
    """Create or update the one person these identifiers belong to; returns (id, action)."""
    secret = instance_secret(engine, "tombstone")
    with engine.begin() as conn:
        return resolve_contact(conn, clock.now(), data, default_region=default_region, secret=secret, source=source)


def resolve_contact(
    conn: sa.Connection, now: dt.datetime, data: ContactInput, *, default_region: str, secret: str, source: str
) -> tuple[int, str]:
    """upsert_contact inside the caller's transaction (e.g. a message and its new recipient commit together)."""
    record = to_incoming(data, default_region)
    outcome = Resolver(conn, now, secret=secret, source=source, actor=source).resolve([record])[0]
    return outcome.person_id, outcome.action


def resolve_incoming(
    conn: sa.Connection, now: dt.datetime, records: Sequence[Incoming], *, secret: str, source: str
) -> list[int]:
    """resolve_contact for many records at once (one prefetch, one bulk write): the person id of each, in order.
    Build each record with to_incoming first, so a bad identifier is that record's error, not the batch's."""
    outcomes = Resolver(conn, now, secret=secret, source=source, actor=source).resolve(list(records))
    return [outcome.person_id for outcome in outcomes]


def contact_detail(engine: sa.Engine, person_id: int) -> dict[str, Any]:
    with read_connection(engine) as conn:
        person = dict(get_person(conn, person_id))
        events = load_events(conn, [person_id])[person_id]
        person["identifiers"] = [
            {k: i[k] for k in ("id", "kind", "value", "key", "batch_id", "created_at")}
            for i in identifiers_of(conn, person_id)
        ]
        person["consent"] = {
            k: {"allowed": v.allowed, "state": v.state, "reason": v.reason} for k, v in consent_summary(events).items()
        }
        person["sources"] = [
            dict(r)
            for r in conn.execute(
                sa.select(
                    source_records.c.id,
                    source_records.c.batch_id,
                    source_records.c.file_name,
                    source_records.c.row_number,
                )
                .where(source_records.c.person_id == person_id)
                .order_by(source_records.c.id)
            ).mappings()
        ]
        person["timeline"] = _timeline(conn, person_id)
    return person


def _timeline(conn: sa.Connection, person_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for event in person_history(conn, person_id):
        items.append(
            {
                "at": event["recorded_at"],
                "kind": f"consent.{event['kind']}",
                "detail": f"{event['channel']}/{event['purpose']} via {event['source']}",
            }
        )
    for r in conn.execute(sa.select(source_records).where(source_records.c.person_id == person_id)).mappings():
        items.append({"at": r["created_at"], "kind": "imported", "detail": f"{r['file_name']} row {r['row_number']}"})
    involved = sa.or_(merges.c.survivor_id == person_id, merges.c.merged_id == person_id)
    for r in conn.execute(sa.select(merges).where(involved)).mappings():
        items.append(
            {
                "at": r["created_at"],
                "kind": "merged",
                "detail": f"merge {r['id']}: {r['merged_id']} into {r['survivor_id']} ({r['reason']})",
            }
        )
        if r["undone_at"]:
            items.append(
                {
                    "at": r["undone_at"],
                    "kind": "unmerged",
                    "detail": f"merge {r['id']} undone by {r['undone_by']}",
                }
            )
    return sorted(items, key=lambda i: i["at"], reverse=True)


def search_contacts(
    engine: sa.Engine, query: str = "", *, limit: int = 50, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    base = sa.select(people).where(people.c.status == "active")
    text = query.strip().casefold()
    if text:
        like = f"%{text}%"
        ident_match = sa.select(identifiers.c.person_id).where(identifiers.c.key.like(like))
        base = base.where(
            sa.or_(
                sa.func.lower(people.c.first_name).like(like),
                sa.func.lower(people.c.last_name).like(like),
                sa.func.lower(people.c.company).like(like),
                people.c.id.in_(ident_match),
            )
        )
    with read_connection(engine) as conn:
        total = conn.scalar(sa.select(sa.func.count()).select_from(base.subquery())) or 0
        rows = conn.execute(base.order_by(people.c.id).limit(limit).offset(offset)).mappings().all()
        ids = [r["id"] for r in rows]
        idents: dict[int, list[str]] = {pid: [] for pid in ids}
        for pid, value in conn.execute(
            sa.select(identifiers.c.person_id, identifiers.c.value)
            .where(identifiers.c.person_id.in_(ids))
            .order_by(identifiers.c.id)
        ):
            idents[pid].append(value)
    return int(total), [dict(r) | {"identifiers": idents[r["id"]]} for r in rows]


def record_consent(
    uow: UnitOfWork,
    person_id: int,
    *,
    channel: str,
    purpose: str,
    kind: str,
    explicit: bool,
    source: str,
    note: str | None = None,
) -> None:
    get_person(uow.conn, person_id)
    record_events(
        uow.conn,
        [event_row(person_id, channel, purpose, kind, source=source, now=uow.now, explicit=explicit, note=note)],
    )
    details = {"channel": channel, "purpose": purpose, "kind": kind, "explicit": explicit, "source": source}
    uow.audit("consent.recorded", target=f"person {person_id}", target_id=person_id, details=details)


def merge_contacts(
    uow: UnitOfWork, survivor_id: int, merged_id: int, *, reason: str, suggestion_id: int | None = None
) -> int:
    """Merge `merged_id` into `survivor_id` (reversible) and put it on the record."""
    merge_id = merge_people(uow.conn, survivor_id, merged_id, actor=uow.actor.label, reason=reason, now=uow.now)
    details = {"merge": merge_id, "merged": merged_id}
    if suggestion_id is not None:
        details["suggestion"] = suggestion_id
    uow.audit("contacts.merged", target=f"person {survivor_id}", target_id=survivor_id, details=details)
    return merge_id


def unmerge_contacts(uow: UnitOfWork, merge_id: int) -> dict[str, int]:
    result = unmerge(uow.conn, merge_id, actor=uow.actor.label, now=uow.now)
    uow.audit("contacts.unmerged", target=f"merge {merge_id}", details=dict(result))
    return result


def lock_fields(uow: UnitOfWork, person_id: int, fields: Sequence[str]) -> None:
    bad = set(fields) - set(SCALAR_FIELDS)
    if bad:
        raise InvalidInputError(f"Cannot lock {', '.join(sorted(bad))}", field="fields")
    person = get_person(uow.conn, person_id)
    locked = sorted(set(person["locked_fields"] or []) | set(fields))
    uow.conn.execute(people.update().where(people.c.id == person_id).values(locked_fields=locked, updated_at=uow.now))
    uow.audit("contacts.fields_locked", target=f"person {person_id}", target_id=person_id, details={"fields": locked})


def list_merges(engine: sa.Engine, limit: int = 100) -> list[dict[str, Any]]:
    with read_connection(engine) as conn:
        rows = conn.execute(sa.select(merges).order_by(merges.c.id.desc()).limit(limit)).mappings()
        return [{k: v for k, v in r.items() if k != "snapshot"} for r in rows]


def ensure_person(engine: sa.Engine, person_id: int) -> None:
    with read_connection(engine) as conn:
        if conn.scalar(sa.select(people.c.id).where(people.c.id == person_id)) is None:
            raise NotFoundError(f"No person with id {person_id}.", id=person_id)


def display_names(engine: sa.Engine, person_ids: Sequence[int]) -> dict[int, str]:
    """A label per person for lists elsewhere (Messages): the name, else the first identifier, else ''."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    with read_connection(engine) as conn:
        rows = conn.execute(
            sa.select(people.c.id, people.c.first_name, people.c.last_name).where(people.c.id.in_(ids))
        ).all()
        names = {pid: " ".join(p for p in (first, last) if p) for pid, first, last in rows}
        unnamed = [pid for pid, name in names.items() if not name]
        if unnamed:
            query = sa.select(identifiers.c.person_id, identifiers.c.value).where(identifiers.c.person_id.in_(unnamed))
            for pid, value in conn.execute(query.order_by(identifiers.c.id.desc())):
                names[pid] = value  # descending, so the first identifier is the one left standing
    return names


def count_active_people(engine: sa.Engine) -> int:
    """How many people are active (not merged away, not erased): the dashboard's headline."""
    with engine.connect() as conn:
        count = conn.scalar(sa.select(sa.func.count()).select_from(people).where(people.c.status == "active"))
    return int(count or 0)
