"""Segment conditions over people, compiled to SQL predicates that mean the same on SQLite and PostgreSQL.

The segments slice owns the filter tree; this module owns the people-side SQL (the `people`,
`identifiers` and `source_records` tables belong to contacts). Every predicate here is two-valued:
it is TRUE or FALSE for every person, never NULL, so a `not` group is an exact complement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from herald.db.contacts_tables import identifiers, people, source_records

ACTIVE = "active"
IDENTIFIER_KINDS = ("email", "phone", "handle")

# A string attribute counts as a number when it reads as one: sign, digits, at most one point.
_PG_NUMBER = r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"


class _PerDialect(sa.ColumnElement[Any]):
    """One expression, written twice: JSON access has no common spelling on SQLite and PostgreSQL."""

    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy reads it as declared on its base)
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("postgresql", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, sqlite: sa.ColumnElement[Any], postgresql: sa.ColumnElement[Any]) -> None:
        self.sqlite = sqlite
        self.postgresql = postgresql
        self.type = postgresql.type


@compiles(_PerDialect)
def _compile_per_dialect(element: _PerDialect, compiler: Any, **kw: Any) -> str:
    chosen = element.sqlite if compiler.dialect.name == "sqlite" else element.postgresql
    return str(compiler.process(chosen, **kw))


def _sqlite_path(name: str) -> str:
    # The segments parser refuses names with a double quote or backslash, so this quoting is exact.
    return f'$."{name}"'


def _pg_attributes() -> Any:
    return sa.type_coerce(people.c.attributes, JSONB)


def _json_type(name: str) -> sa.ColumnElement[Any]:
    """The JSON type of an attribute, or NULL when the key is absent (names differ per engine)."""
    return _PerDialect(
        sa.func.json_type(people.c.attributes, _sqlite_path(name)),
        sa.func.jsonb_typeof(_pg_attributes()[name]),
    )


def _known(predicate: sa.ColumnElement[bool]) -> sa.ColumnElement[bool]:
    """NULL (an absent key, a non-number) becomes FALSE, so `not` stays an exact complement."""
    return sa.func.coalesce(predicate, sa.false())


def _present(name: str) -> sa.ColumnElement[bool]:
    return _known(_json_type(name) != "null")


def _text(name: str) -> sa.ColumnElement[str]:
    """The attribute as text (a JSON string's content, a number's digits), NULL when absent."""
    return _PerDialect(
        sa.cast(sa.func.json_extract(people.c.attributes, _sqlite_path(name)), sa.Text),
        _pg_attributes()[name].astext,
    )


def _sqlite_number(name: str) -> sa.ColumnElement[Any]:
    kind = sa.func.json_type(people.c.attributes, _sqlite_path(name))
    raw = sa.func.json_extract(people.c.attributes, _sqlite_path(name))
    text: sa.ColumnElement[Any] = sa.cast(raw, sa.Text)
    rest: sa.ColumnElement[Any] = text
    for digit in "0123456789":
        rest = sa.func.replace(rest, digit, "")
    # What is left once the digits are gone must be nothing, a point, or a leading sign (with a point).
    looks_numeric = sa.and_(
        sa.func.length(text) > sa.func.length(rest),
        sa.or_(
            rest.in_(["", "."]),
            sa.and_(rest.in_(["-", "-.", "+", "+."]), sa.func.substr(text, 1, 1).in_(["-", "+"])),
        ),
    )
    return sa.case(
        (kind.in_(["integer", "real"]), raw),
        (sa.and_(kind == "text", looks_numeric), sa.cast(raw, sa.Float)),
        else_=sa.null(),
    )


def _pg_number(name: str) -> sa.ColumnElement[Any]:
    value = _pg_attributes()[name]
    text = value.astext
    return sa.case(
        (sa.func.jsonb_typeof(value) == "number", sa.cast(text, sa.Numeric)),
        (sa.and_(sa.func.jsonb_typeof(value) == "string", text.op("~")(_PG_NUMBER)), sa.cast(text, sa.Numeric)),
        else_=sa.null(),
    )


def _number(name: str) -> sa.ColumnElement[Any]:
    """The attribute as a number (a JSON number or a numeric string), NULL otherwise."""
    return _PerDialect(_sqlite_number(name), _pg_number(name))


def attribute_exists(name: str) -> sa.ColumnElement[bool]:
    """The attribute is set (a JSON null counts as missing)."""
    return _present(name)


def attribute_equals(name: str, value: str | float) -> sa.ColumnElement[bool]:
    """Equal as text for a text value, as a number for a number (so "42" equals 42 and 42.0)."""
    if isinstance(value, str):
        return _known(_text(name) == value)
    return _known(_number(name) == value)


def attribute_contains(name: str, value: str) -> sa.ColumnElement[bool]:
    """The attribute's text contains `value`, ignoring case."""
    return _known(_text(name).icontains(value, autoescape=True))


def attribute_compare(name: str, op: str, value: float) -> sa.ColumnElement[bool]:
    """greater / less, numbers compared as numbers; a non-numeric value never matches."""
    number = _number(name)
    return _known(number > value if op == "greater" else number < value)


def has_tag(tag: str) -> sa.ColumnElement[bool]:
    """`tag` is in the person's tags (exact, case-sensitive, as stored)."""
    each = sa.func.json_each(people.c.tags).table_valued("value")
    sqlite = sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == tag))
    postgresql = sa.type_coerce(people.c.tags, JSONB).contains([tag])
    return _PerDialect(sqlite, postgresql)


def has_identifier(kind: str) -> sa.ColumnElement[bool]:
    """The person holds at least one identifier of this kind (email, phone or handle)."""
    return sa.exists(sa.select(sa.literal(1)).where(identifiers.c.person_id == people.c.id, identifiers.c.kind == kind))


def country_in(codes: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.and_(people.c.country.is_not(None), people.c.country.in_(list(codes)))


def timezone_in(zones: Sequence[str], *, unknown: bool) -> sa.ColumnElement[bool]:
    """The stored zone is one of `zones`, or (with `unknown`) no zone is stored."""
    clauses: list[sa.ColumnElement[bool]] = []
    if zones:
        clauses.append(sa.and_(people.c.timezone.is_not(None), people.c.timezone.in_(list(zones))))
    if unknown:
        clauses.append(people.c.timezone.is_(None))
    return sa.or_(*clauses) if clauses else sa.false()


def created_before(instant: dt.datetime) -> sa.ColumnElement[bool]:
    return people.c.created_at < instant


def created_at_or_after(instant: dt.datetime) -> sa.ColumnElement[bool]:
    return people.c.created_at >= instant


def in_import_batch(batch_id: int) -> sa.ColumnElement[bool]:
    """The person came from that import: created by it, or matched by one of its rows."""
    return sa.or_(
        sa.and_(people.c.created_batch_id.is_not(None), people.c.created_batch_id == batch_id),
        sa.exists(
            sa.select(sa.literal(1)).where(
                source_records.c.person_id == people.c.id, source_records.c.batch_id == batch_id
            )
        ),
    )


def person_in(ids: sa.Select[tuple[int]], *, negate: bool = False) -> sa.ColumnElement[bool]:
    """The person's id is (or is not) among `ids` (a select of non-null person ids from another slice)."""
    return people.c.id.not_in(ids) if negate else people.c.id.in_(ids)


def active_people(where: sa.ColumnElement[bool]) -> sa.Select[tuple[int]]:
    """The active people matching `where`, as one column `person_id`."""
    return sa.select(people.c.id.label("person_id")).where(people.c.status == ACTIVE, where)


def preview_people(conn: sa.Connection, ids: sa.Select[tuple[int]], *, limit: int) -> list[dict[str, Any]]:
    """The first `limit` people of `ids` (by id): names, one e-mail address, country and zone."""
    chosen = ids.subquery()
    rows = conn.execute(
        sa.select(people.c.id, people.c.first_name, people.c.last_name, people.c.country, people.c.timezone)
        .where(people.c.id.in_(sa.select(chosen.c.person_id)))
        .order_by(people.c.id)
        .limit(limit)
    ).all()
    ids_found = [row.id for row in rows]
    emails: dict[int, str] = {}
    if ids_found:
        query = (
            sa.select(identifiers.c.person_id, identifiers.c.value)
            .where(identifiers.c.person_id.in_(ids_found), identifiers.c.kind == "email")
            .order_by(identifiers.c.id)
        )
        for person_id, value in conn.execute(query):
            emails.setdefault(person_id, value)
    return [
        {
            "id": row.id,
            "first_name": row.first_name,
            "last_name": row.last_name,
            "email": emails.get(row.id),
            "country": row.country,
            "timezone": row.timezone,
        }
        for row in rows
    ]
