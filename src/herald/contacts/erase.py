"""Erasure: remove a person's personal data, keep a keyed hash so a re-import stays suppressed."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import event_row, record_events
from herald.consent.policy import ALL_PURPOSES, CHANNELS
from herald.contacts.store import get_person, tombstone_hash
from herald.core.errors import ConflictError
from herald.db.contacts_tables import (
    batch_changes,
    identifiers,
    merge_suggestions,
    merges,
    people,
    source_records,
    tombstones,
)
from herald.db.runtime import instance_secret
from herald.db.unit_of_work import UnitOfWork


def erase_person(uow: UnitOfWork, person_id: int) -> dict[str, Any]:
    """Erase one person (and those merged into them) in the unit's transaction; audited as contacts.erased."""
    conn, now, actor = uow.conn, uow.now, uow.actor.label
    secret = instance_secret(conn, "tombstone")
    person = get_person(conn, person_id, for_update=True)
    if person["status"] == "erased":
        raise ConflictError(f"Person {person_id} is already erased.", id=person_id)
    # People merged into this one are the same human: erase their identifiers too.
    absorbed = list(conn.scalars(sa.select(people.c.id).where(people.c.merged_into_id == person_id)))
    ids = [person_id, *absorbed]
    keys = conn.execute(sa.select(identifiers.c.kind, identifiers.c.key).where(identifiers.c.person_id.in_(ids))).all()
    hashes = {tombstone_hash(secret, kind, key): kind for kind, key in keys}
    known = set(conn.scalars(sa.select(tombstones.c.key_hash).where(tombstones.c.key_hash.in_(list(hashes)))))
    fresh = [{"key_hash": h, "kind": k, "created_at": now} for h, k in hashes.items() if h not in known]
    if fresh:
        conn.execute(tombstones.insert(), fresh)
    for table in (identifiers, source_records, batch_changes):
        conn.execute(table.delete().where(table.c.person_id.in_(ids)))
    pair = sa.or_(merge_suggestions.c.person_a_id.in_(ids), merge_suggestions.c.person_b_id.in_(ids))
    conn.execute(merge_suggestions.delete().where(pair))
    # Merge snapshots hold the erased data; blank them (those merges can no longer be undone).
    involved = sa.or_(merges.c.survivor_id.in_(ids), merges.c.merged_id.in_(ids))
    conn.execute(merges.update().where(involved).values(snapshot={"erased": True}))
    blank: dict[str, Any] = {
        "first_name": None,
        "last_name": None,
        "company": None,
        "locale": None,
        "timezone": None,
        "timezone_source": None,
        "country": None,
        "attributes": {},
        "tags": [],
        "locked_fields": [],
    }
    conn.execute(people.update().where(people.c.id.in_(ids)).values(**blank, status="erased", updated_at=now))
    record_events(
        conn,
        [
            event_row(
                person_id,
                ch,
                ALL_PURPOSES,
                "suppressed",
                source="erasure",
                now=now,
                note=f"erased by {actor}",
            )
            for ch in CHANNELS
        ],
    )
    result = {"person_id": person_id, "identifiers_tombstoned": len(hashes)}
    uow.audit("contacts.erased", target=f"person {person_id}", target_id=person_id, details=result)
    return result
