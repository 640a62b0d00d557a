"""Reversible merges: record who, when, why and what moved; unmerge restores both people."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import copy_opt_outs, event_ids, event_ids_of, move_all_events, move_events
from herald.contacts.store import as_survivorship, get_active_person, update_person
from herald.contacts.survivorship import person_fields, survive
from herald.core.errors import ConflictError, InvalidInputError, NotFoundError
from herald.db.contacts_tables import identifiers, merge_suggestions, merges, people, source_records
from herald.db.event_log import Origin, append_event, append_events


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


def merge_all(
    conn: sa.Connection,
    decided: Sequence[tuple[int, int, str]],
    *,
    actor: str,
    now: dt.datetime,
    batch_id: int | None = None,
) -> list[int]:
    """merge_people() for many (survivor, merged, reason) in order, inside the caller's transaction.

    The same merges, snapshots and events as calling merge_people() for each, but every table is read
    once and written with one executemany in merge order (an import decides hundreds per chunk, and
    a merge one at a time is some twenty statements). Returns the merge ids in order.
    """
    if not decided:
        return []
    involved = sorted({p for survivor, other, _ in decided for p in (survivor, other)})
    rows = _lock_people(conn, involved)
    owned = {table: _ids_of(conn, table, involved) for table in (identifiers, source_records)}
    events_of = event_ids_of(conn, involved)
    moves: list[tuple[int, int]] = []
    survivors: list[dict[str, Any]] = []
    merge_rows: list[dict[str, Any]] = []
    for survivor_id, merged_id, reason in decided:
        if survivor_id == merged_id:
            raise InvalidInputError("A person cannot be merged with themselves.", field="merged_id")
        survivor, other = _active(rows, survivor_id), _active(rows, merged_id)
        result = survive(as_survivorship(survivor), as_survivorship(other))
        snapshot = {
            "survivor_before": _jsonable(person_fields(survivor)),
            "merged_before": _jsonable(person_fields(other)),
            "survivor_after": _jsonable(result),
            "identifier_ids": list(owned[identifiers][merged_id]),
            "source_record_ids": list(owned[source_records][merged_id]),
            "consent_event_ids": list(events_of[merged_id]),
        }
        # What the database will hold once the writes below ran up to this merge.
        for held in (*owned.values(), events_of):
            held[survivor_id].extend(held[merged_id])
            held[merged_id] = []
        survivor.update(result, updated_at=now)
        other.update(status="merged", merged_into_id=survivor_id, updated_at=now)
        moves.append((merged_id, survivor_id))
        survivors.append({**result, "_pid": survivor_id})
        merge_rows.append(
            {
                "survivor_id": survivor_id,
                "merged_id": merged_id,
                "actor": actor,
                "reason": reason,
                "batch_id": batch_id,
                "snapshot": snapshot,
                "created_at": now,
            }
        )
    pairs = [{"_from": a, "_to": b} for a, b in moves]
    for table in (identifiers, source_records):
        conn.execute(
            table.update().where(table.c.person_id == sa.bindparam("_from")).values(person_id=sa.bindparam("_to")),
            pairs,
        )
    move_all_events(conn, moves)
    columns: dict[str, Any] = {c: sa.bindparam(c) for c in survivors[0] if c != "_pid"}
    conn.execute(
        people.update().where(people.c.id == sa.bindparam("_pid")).values({**columns, "updated_at": now}), survivors
    )
    conn.execute(
        people.update()
        .where(people.c.id == sa.bindparam("_from"))
        .values(status="merged", merged_into_id=sa.bindparam("_to"), updated_at=now),
        pairs,
    )
    # A dismissed pair stays dismissed: the operator merged it despite the dismissal, not from it.
    conn.execute(
        merge_suggestions.update()
        .where(
            merge_suggestions.c.person_a_id == sa.bindparam("_low"),
            merge_suggestions.c.person_b_id == sa.bindparam("_high"),
            merge_suggestions.c.status == "open",
        )
        .values(status="merged", decided_at=now, decided_by=actor),
        [{"_low": min(a, b), "_high": max(a, b)} for a, b in moves],
    )
    returned = conn.execute(merges.insert().returning(merges.c.id, sort_by_parameter_order=True), merge_rows)
    merge_ids = [int(merge_id) for merge_id in returned.scalars()]
    origin = Origin("import", batch_id) if batch_id is not None else None
    append_events(
        conn,
        [
            {
                "kind": "contacts_merged",
                "occurred_at": now,
                "person_id": row["survivor_id"],
                "origin": origin,
                "data": {"merged_id": row["merged_id"], "merge_id": merge_id, "reason": row["reason"]},
            }
            for row, merge_id in zip(merge_rows, merge_ids, strict=True)
        ],
    )
    return merge_ids


def _lock_people(conn: sa.Connection, ids: list[int]) -> dict[int, dict[str, Any]]:
    # In id order, like every other writer that locks several people, so two imports cannot deadlock here.
    query = sa.select(people).where(people.c.id.in_(ids)).order_by(people.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {row["id"]: dict(row) for row in conn.execute(query).mappings()}


def _active(rows: dict[int, dict[str, Any]], person_id: int) -> dict[str, Any]:
    row = rows.get(person_id)
    if row is None:
        raise NotFoundError(f"No person with id {person_id}.", id=person_id)
    if row["status"] != "active":
        hint = f" (merged into {row['merged_into_id']})" if row["merged_into_id"] else ""
        raise ConflictError(f"Person {person_id} is {row['status']}{hint}.", id=person_id, status=row["status"])
    return row


def _ids_of(conn: sa.Connection, table: sa.Table, person_ids: list[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {pid: [] for pid in person_ids}
    query = sa.select(table.c.person_id, table.c.id).where(table.c.person_id.in_(person_ids))
    for pid, row_id in conn.execute(query):
        out[pid].append(row_id)
    return out


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
