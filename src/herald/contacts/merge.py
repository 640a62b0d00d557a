"""Reversible merges: record who, when, why and what moved; unmerge restores both people."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import copy_opt_outs, event_ids, move_events
from herald.contacts.store import as_survivorship, get_active_person, update_person
from herald.contacts.survivorship import person_fields, survive
from herald.core.errors import ConflictError, InvalidInputError, NotFoundError
from herald.db.contacts_tables import identifiers, merge_suggestions, merges, people, source_records
from herald.db.event_log import Origin, append_event


def _ids(conn: sa.Connection, table: sa.Table, person_id: int) -> list[int]:
    return list(conn.scalars(sa.select(table.c.id).where(table.c.person_id == person_id)))


def merge_people(
    conn: sa.Connection,
    survivor_id: int,
    merged_id: int,
    *,
    actor: str,
    reason: str,
    now: dt.datetime,
    batch_id: int | None = None,
) -> int:
    """Merge `merged_id` into `survivor_id` inside the caller's transaction; return the merge id."""
    if survivor_id == merged_id:
        raise InvalidInputError("A person cannot be merged with themselves.", field="merged_id")
    survivor = get_active_person(conn, survivor_id, for_update=True)
    other = get_active_person(conn, merged_id, for_update=True)
    result = survive(as_survivorship(survivor), as_survivorship(other))
    snapshot = {
        "survivor_before": _jsonable(person_fields(survivor)),
        "merged_before": _jsonable(person_fields(other)),
        "survivor_after": _jsonable(result),
        "identifier_ids": _ids(conn, identifiers, merged_id),
        "source_record_ids": _ids(conn, source_records, merged_id),
        "consent_event_ids": event_ids(conn, merged_id),
    }
    # Consent events move with the identifiers: opt-outs are sticky in the policy, so the merged
    # person's unsubscribes keep applying (opt-out wins on merge).
    for table in (identifiers, source_records):
        conn.execute(table.update().where(table.c.person_id == merged_id).values(person_id=survivor_id))
    move_events(conn, merged_id, survivor_id)
    update_person(conn, survivor_id, result, now)
    conn.execute(
        people.update()
        .where(people.c.id == merged_id)
        .values(status="merged", merged_into_id=survivor_id, updated_at=now)
    )
    # A dismissed pair stays dismissed: the operator merged it despite the dismissal, not from it.
    conn.execute(
        merge_suggestions.update()
        .where(_pair(survivor_id, merged_id), merge_suggestions.c.status == "open")
        .values(status="merged", decided_at=now, decided_by=actor)
    )
    merge_id = conn.scalar(
        merges.insert()
        .values(
            survivor_id=survivor_id,
            merged_id=merged_id,
            actor=actor,
            reason=reason,
            batch_id=batch_id,
            snapshot=snapshot,
            created_at=now,
        )
        .returning(merges.c.id)
    )
    assert merge_id is not None
    append_event(
        conn,
        "contacts_merged",
        at=now,
        person_id=survivor_id,
        origin=Origin("import", batch_id) if batch_id is not None else None,
        data={"merged_id": merged_id, "merge_id": int(merge_id), "reason": reason},
    )
    return int(merge_id)


def _pair(a: int, b: int) -> sa.ColumnElement[bool]:
    return sa.and_(merge_suggestions.c.person_a_id == min(a, b), merge_suggestions.c.person_b_id == max(a, b))


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple | frozenset | set) else v) for k, v in values.items()}


def unmerge(conn: sa.Connection, merge_id: int, *, actor: str, now: dt.datetime) -> dict[str, int]:
    """Undo a merge inside the caller's transaction: both people come back with their own data, and the
    pair's merged suggestion is open again (`reopened_suggestion_id` in the result)."""
    merge = conn.execute(sa.select(merges).where(merges.c.id == merge_id)).mappings().first()
    if merge is None:
        raise NotFoundError(f"No merge with id {merge_id}.", id=merge_id)
    if merge["undone_at"] is not None:
        raise ConflictError(f"Merge {merge_id} was already undone.", id=merge_id)
    snap = merge["snapshot"]
    if snap.get("erased"):
        raise ConflictError(f"Merge {merge_id} involved an erased person and cannot be undone.", id=merge_id)
    survivor_id, merged_id = merge["survivor_id"], merge["merged_id"]
    later = conn.scalar(
        sa.select(merges.c.id)
        .where(merges.c.id > merge_id, merges.c.undone_at.is_(None))
        .where(merges.c.merged_id == survivor_id)
    )
    if later is not None:
        raise ConflictError(f"Person {survivor_id} was merged again later; undo merge {later} first.", id=later)
    survivor = get_active_person(conn, survivor_id, for_update=True)

    moves = (
        (identifiers, "identifier_ids"),
        (source_records, "source_record_ids"),
    )
    for table, key in moves:
        ids = snap.get(key) or []
        for start in range(0, len(ids), 5000):
            conn.execute(
                table.update()
                .where(table.c.id.in_(ids[start : start + 5000]), table.c.person_id == survivor_id)
                .values(person_id=merged_id)
            )
    move_events(conn, survivor_id, merged_id, ids=snap.get("consent_event_ids") or [])
    # Opt-outs recorded on the survivor after the merge may have come from the merged person's
    # address; copy them back so unmerging never re-opens a channel someone closed.
    copy_opt_outs(conn, survivor_id, merged_id, since=merge["created_at"])

    restored = {
        name: snap["survivor_before"][name]
        for name, after in snap["survivor_after"].items()
        if name in snap["survivor_before"] and survivor[name] == after
    }
    update_person(conn, survivor_id, restored, now)
    conn.execute(
        people.update()
        .where(people.c.id == merged_id)
        .values(**snap["merged_before"], status="active", merged_into_id=None, updated_at=now)
    )
    conn.execute(merges.update().where(merges.c.id == merge_id).values(undone_at=now, undone_by=actor))
    result = {"survivor_id": survivor_id, "restored_id": merged_id}
    # The pair is two people again: its suggestion (if the merge came from one) is open for a new decision.
    reopened = conn.scalar(
        merge_suggestions.update()
        .where(_pair(survivor_id, merged_id), merge_suggestions.c.status == "merged")
        .values(status="open", decided_at=None, decided_by=None)
        .returning(merge_suggestions.c.id)
    )
    if reopened is not None:
        result["reopened_suggestion_id"] = int(reopened)
    return result
