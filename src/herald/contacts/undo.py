"""import-undo: roll a whole import batch back, in one transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from herald.contacts.merge import unmerge
from herald.core.clock import Clock
from herald.core.errors import ConflictError, NotFoundError
from herald.db.tables import (
    batch_changes,
    consent_events,
    identifiers,
    import_batches,
    import_rejects,
    merge_suggestions,
    merges,
    people,
    source_records,
)


def _later_batches_touching(conn: sa.Connection, batch_id: int, person_ids: list[int]) -> list[int]:
    if not person_ids:
        return []
    later = sa.select(import_batches.c.id).where(import_batches.c.id > batch_id, import_batches.c.status == "done")
    touched = sa.union(
        sa.select(source_records.c.batch_id).where(source_records.c.person_id.in_(person_ids)),
        sa.select(batch_changes.c.batch_id).where(batch_changes.c.person_id.in_(person_ids)),
    ).subquery()
    return sorted(conn.scalars(later.where(import_batches.c.id.in_(sa.select(touched.c.batch_id)))))


def undo_import(
    engine: sa.Engine, clock: Clock, batch_id: int, *, actor: str, final_status: str = "undone"
) -> dict[str, Any]:
    """Remove everything the batch created and restore what it changed; refuses if later batches built on it."""
    now = clock.now()
    with engine.begin() as conn:
        batch = conn.execute(sa.select(import_batches).where(import_batches.c.id == batch_id)).mappings().first()
        if batch is None:
            raise NotFoundError(f"No import batch with id {batch_id}.", id=batch_id)
        if batch["status"] == "undone":
            raise ConflictError(f"Import batch {batch_id} was already undone.", id=batch_id)
        created = list(conn.scalars(sa.select(people.c.id).where(people.c.created_batch_id == batch_id)))
        changed = list(conn.scalars(sa.select(batch_changes.c.person_id).where(batch_changes.c.batch_id == batch_id)))
        blocking = _later_batches_touching(conn, batch_id, created + changed)
        if blocking:
            ids = ", ".join(map(str, blocking))
            raise ConflictError(f"Later imports ({ids}) changed these people; undo them first.", later=blocking)

        # Merges this batch made, and any later merge that involves a person it created, come apart first.
        involved = sa.or_(
            merges.c.batch_id == batch_id, merges.c.survivor_id.in_(created), merges.c.merged_id.in_(created)
        )
        for merge_id in conn.scalars(
            sa.select(merges.c.id).where(involved, merges.c.undone_at.is_(None)).order_by(merges.c.id.desc())
        ):
            unmerge(conn, merge_id, actor=actor, now=now)

        for table in (consent_events, source_records, identifiers, merge_suggestions):
            conn.execute(table.delete().where(table.c.batch_id == batch_id))
        for row in conn.execute(sa.select(batch_changes).where(batch_changes.c.batch_id == batch_id)).mappings():
            conn.execute(people.update().where(people.c.id == row["person_id"]).values(**row["before"], updated_at=now))
        conn.execute(batch_changes.delete().where(batch_changes.c.batch_id == batch_id))
        removed = _delete_people(conn, created)
        conn.execute(import_rejects.delete().where(import_rejects.c.batch_id == batch_id))
        conn.execute(
            import_batches.update().where(import_batches.c.id == batch_id).values(status=final_status, undone_at=now)
        )
    return {"batch_id": batch_id, "people_removed": removed, "people_restored": len(changed)}


def _delete_people(conn: sa.Connection, person_ids: list[int]) -> int:
    for start in range(0, len(person_ids), 5000):
        part = person_ids[start : start + 5000]
        pair = sa.or_(merge_suggestions.c.person_a_id.in_(part), merge_suggestions.c.person_b_id.in_(part))
        conn.execute(merge_suggestions.delete().where(pair))
        conn.execute(merges.delete().where(sa.or_(merges.c.survivor_id.in_(part), merges.c.merged_id.in_(part))))
        for table in (consent_events, source_records, identifiers, batch_changes):
            conn.execute(table.delete().where(table.c.person_id.in_(part)))
        conn.execute(people.update().where(people.c.merged_into_id.in_(part)).values(merged_into_id=None))
        conn.execute(people.delete().where(people.c.id.in_(part)))
    return len(person_ids)
