"""import-undo: roll a whole import batch back, in one transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import delete_batch_events, delete_people_events
from herald.contacts.merge import unmerge
from herald.core.errors import ConflictError, NotFoundError
from herald.db.contacts_tables import (
    batch_changes,
    identifiers,
    import_batches,
    import_rejects,
    merge_suggestions,
    merges,
    people,
    source_records,
)
from herald.db.unit_of_work import UnitOfWork

# Every statement below selects the batch's people with a subquery on its batch id, never with a list
# of ids: a list costs one bind variable per person, and SQLite refuses more than 250,000 of them.


def _created(batch_id: int) -> sa.Select[tuple[int]]:
    return sa.select(people.c.id).where(people.c.created_batch_id == batch_id)


def _changed(batch_id: int) -> sa.Select[tuple[int]]:
    return sa.select(batch_changes.c.person_id).where(batch_changes.c.batch_id == batch_id)


def _later_batches_touching(conn: sa.Connection, batch_id: int) -> list[int]:
    touched_people = sa.union(_created(batch_id), _changed(batch_id)).subquery()
    people_ids = sa.select(touched_people.c.id)
    later = sa.select(import_batches.c.id).where(import_batches.c.id > batch_id, import_batches.c.status == "done")
    touched = sa.union(
        sa.select(source_records.c.batch_id).where(
            source_records.c.batch_id > batch_id, source_records.c.person_id.in_(people_ids)
        ),
        sa.select(batch_changes.c.batch_id).where(
            batch_changes.c.batch_id > batch_id, batch_changes.c.person_id.in_(people_ids)
        ),
    ).subquery()
    return sorted(conn.scalars(later.where(import_batches.c.id.in_(sa.select(touched.c.batch_id)))))


def undo_import(uow: UnitOfWork, batch_id: int, *, final_status: str = "undone") -> dict[str, Any]:
    """Remove everything the batch created and restore what it changed; refuses if later batches built on it.

    An operator's undo is audited as import.undone; a failed import's own roll-back (final_status
    "failed") is not an operator action and is recorded on the batch row instead."""
    conn, now, actor = uow.conn, uow.now, uow.actor.label
    batch = conn.execute(sa.select(import_batches).where(import_batches.c.id == batch_id)).mappings().first()
    if batch is None:
        raise NotFoundError(f"No import batch with id {batch_id}.", id=batch_id)
    if batch["status"] == "undone":
        raise ConflictError(f"Import batch {batch_id} was already undone.", id=batch_id)
    blocking = _later_batches_touching(conn, batch_id)
    if blocking:
        ids = ", ".join(map(str, blocking))
        raise ConflictError(f"Later imports ({ids}) changed these people; undo them first.", later=blocking)

    # Merges this batch made, and any later merge that involves a person it created, come apart first.
    created = _created(batch_id)
    involved = sa.or_(merges.c.batch_id == batch_id, merges.c.survivor_id.in_(created), merges.c.merged_id.in_(created))
    for merge_id in conn.scalars(
        sa.select(merges.c.id).where(involved, merges.c.undone_at.is_(None)).order_by(merges.c.id.desc())
    ):
        unmerge(conn, merge_id, actor=actor, now=now)

    delete_batch_events(conn, batch_id)
    for table in (source_records, identifiers, merge_suggestions):
        conn.execute(table.delete().where(table.c.batch_id == batch_id))
    restored = _restore_changed(conn, batch_id, now)
    conn.execute(batch_changes.delete().where(batch_changes.c.batch_id == batch_id))
    removed = _delete_created(conn, batch_id)
    conn.execute(import_rejects.delete().where(import_rejects.c.batch_id == batch_id))
    conn.execute(
        import_batches.update().where(import_batches.c.id == batch_id).values(status=final_status, undone_at=now)
    )
    result = {"batch_id": batch_id, "people_removed": removed, "people_restored": restored}
    if final_status == "undone":
        details = {"file": batch["file_name"], "people_removed": removed, "people_restored": restored}
        uow.audit("import.undone", target=f"import {batch_id}", details=details)
    return result


def _restore_changed(conn: sa.Connection, batch_id: int, now: Any) -> int:
    """Put back the journaled fields, one executemany per set of columns (in practice one)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    rows = conn.execute(
        sa.select(batch_changes.c.person_id, batch_changes.c.before).where(batch_changes.c.batch_id == batch_id)
    )
    for person_id, before in rows:
        groups.setdefault(tuple(sorted(before)), []).append({**before, "_pid": person_id})
    for columns, values in groups.items():
        stmt = (
            people.update()
            .where(people.c.id == sa.bindparam("_pid"))
            .values({c: sa.bindparam(c) for c in columns} | {"updated_at": now})
        )
        conn.execute(stmt, values)
    return sum(len(values) for values in groups.values())


def _delete_created(conn: sa.Connection, batch_id: int) -> int:
    """Delete the people the batch created with everything that still hangs off them."""
    created = _created(batch_id)
    pair = sa.or_(merge_suggestions.c.person_a_id.in_(created), merge_suggestions.c.person_b_id.in_(created))
    conn.execute(merge_suggestions.delete().where(pair))
    conn.execute(merges.delete().where(sa.or_(merges.c.survivor_id.in_(created), merges.c.merged_id.in_(created))))
    delete_people_events(conn, created)
    for table in (source_records, identifiers, batch_changes):
        conn.execute(table.delete().where(table.c.person_id.in_(created)))
    conn.execute(people.update().where(people.c.merged_into_id.in_(created)).values(merged_into_id=None))
    return int(conn.execute(people.delete().where(people.c.created_batch_id == batch_id)).rowcount)
