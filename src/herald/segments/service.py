"""Saved segments: create, update, delete through a unit of work (audited); list, get, count and preview."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.core.errors import ConflictError, InvalidInputError, NotFoundError
from herald.db.engine import read_connection
from herald.db.segments_tables import segments
from herald.db.unit_of_work import UnitOfWork
from herald.segments.audience import Definition, count_audience, parse_definition, preview_audience

__all__ = ["Segment", "get_segment", "parse_definition"]

MAX_NAME = 200
MAX_PREVIEW = 500


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    name: str
    definition: Definition
    created_at: dt.datetime
    updated_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "definition": self.definition.as_data(),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _segment(row: sa.RowMapping) -> Segment:
    return Segment(
        id=int(row["id"]),
        name=row["name"],
        definition=parse_definition(row["definition"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise InvalidInputError(f"A segment name is 1 to {MAX_NAME} characters.", field="name")
    return name


def _name_taken(conn: sa.Connection, name: str, but: int | None = None) -> None:
    query = sa.select(segments.c.id).where(segments.c.name == name)
    if but is not None:
        query = query.where(segments.c.id != but)
    if conn.execute(query).first() is not None:
        raise ConflictError(f"A segment named {name!r} exists already.", name=name)


def get_segment(conn: sa.Connection, segment_id: int) -> Segment:
    row = conn.execute(sa.select(segments).where(segments.c.id == segment_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"No segment {segment_id}.", id=segment_id)
    return _segment(row)


def list_segments(engine: sa.Engine) -> list[Segment]:
    with read_connection(engine) as conn:
        return [_segment(r) for r in conn.execute(sa.select(segments).order_by(segments.c.name)).mappings()]


def find_segment(engine: sa.Engine, segment_id: int) -> Segment:
    with read_connection(engine) as conn:
        return get_segment(conn, segment_id)


def create_segment(uow: UnitOfWork, name: str, definition: Mapping[str, Any]) -> Segment:
    name = _check_name(name)
    parsed = parse_definition(definition)
    _name_taken(uow.conn, name)
    segment_id = uow.conn.scalar(
        segments.insert()
        .values(name=name, definition=parsed.as_data(), created_at=uow.now, updated_at=uow.now)
        .returning(segments.c.id)
    )
    assert segment_id is not None
    uow.audit("segment.created", target=f"segment {segment_id}", target_id=segment_id, details={"name": name})
    return get_segment(uow.conn, int(segment_id))


def update_segment(
    uow: UnitOfWork, segment_id: int, *, name: str | None = None, definition: Mapping[str, Any] | None = None
) -> Segment:
    before = get_segment(uow.conn, segment_id)
    values: dict[str, Any] = {"updated_at": uow.now}
    if name is not None:
        values["name"] = _check_name(name)
        _name_taken(uow.conn, values["name"], but=segment_id)
    if definition is not None:
        values["definition"] = parse_definition(definition).as_data()
    uow.conn.execute(segments.update().where(segments.c.id == segment_id).values(**values))
    changed = sorted(k for k in values if k != "updated_at")
    uow.audit(
        "segment.updated",
        target=f"segment {segment_id}",
        target_id=segment_id,
        details={"name": values.get("name", before.name), "changed": changed},
    )
    return get_segment(uow.conn, segment_id)


def delete_segment(uow: UnitOfWork, segment_id: int) -> None:
    segment = get_segment(uow.conn, segment_id)
    uow.conn.execute(segments.delete().where(segments.c.id == segment_id))
    uow.audit("segment.deleted", target=f"segment {segment_id}", target_id=segment_id, details={"name": segment.name})


def count_definition(engine: sa.Engine, definition: Mapping[str, Any] | Definition, now: dt.datetime) -> int:
    """The live count of an unsaved definition (the editor's count as the operator types)."""
    parsed = definition if isinstance(definition, Definition) else parse_definition(definition)
    with read_connection(engine) as conn:
        return count_audience(conn, parsed, now=now)


def count_segment(engine: sa.Engine, segment_id: int, now: dt.datetime) -> int:
    with read_connection(engine) as conn:
        return count_audience(conn, get_segment(conn, segment_id).definition, now=now)


def preview_definition(
    engine: sa.Engine, definition: Mapping[str, Any] | Definition, now: dt.datetime, *, limit: int = 20
) -> list[dict[str, Any]]:
    if not 1 <= limit <= MAX_PREVIEW:
        raise InvalidInputError(f"limit is 1 to {MAX_PREVIEW}", field="limit")
    parsed = definition if isinstance(definition, Definition) else parse_definition(definition)
    with read_connection(engine) as conn:
        return preview_audience(conn, parsed, limit=limit, now=now)


def preview_segment(engine: sa.Engine, segment_id: int, now: dt.datetime, *, limit: int = 20) -> list[dict[str, Any]]:
    return preview_definition(engine, find_segment(engine, segment_id).definition, now, limit=limit)
