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

# A string attribute counts as a number when it reads as one: an optional sign, digits, at most one point
# (the same rule on both engines: no spaces, no exponent).
_PG_NUMBER = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"


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
    # Parenthesised: the compiler sees one element and would not group an AND inside it under NOT / "= 0".
    return f"({compiler.process(chosen, **kw)})"


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


def _sqlite_looks_numeric(text: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """The same language as _PG_NUMBER, in GLOBs (SQLite has no regular expressions): a digit somewhere,
    nothing but digits, points and signs, at most one point, a sign only in front."""
    return sa.and_(
        text.op("GLOB")("*[0-9]*"),
        sa.not_(text.op("GLOB")("*[^0-9.+-]*")),
        sa.not_(text.op("GLOB")("*.*.*")),
        sa.not_(text.op("GLOB")("?*[+-]*")),
    )


def _sqlite_number_test(name: str, op: str, value: float) -> sa.ColumnElement[bool]:
    """On SQLite, one JSON parse per person: json_each hands the value and its type to every test.

    (json_extract/json_type parse the whole document on each call, and SQLite 3.40 has no parse cache.)
    """
    each = sa.func.json_each(people.c.attributes).table_valued("key", "value", "type").alias("attr")
    number = sa.case(
        (each.c.type.in_(["integer", "real"]), each.c.value),
        (sa.and_(each.c.type == "text", _sqlite_looks_numeric(each.c.value)), sa.cast(each.c.value, sa.Float)),
        else_=sa.null(),
    )
    compared = number > value if op == "greater" else number < value if op == "less" else number == value
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.key == name, compared))


def _pg_number(name: str) -> sa.ColumnElement[Any]:
    value = _pg_attributes()[name]
    text = value.astext
    return sa.case(
        (sa.func.jsonb_typeof(value) == "number", sa.cast(text, sa.Numeric)),
        (sa.and_(sa.func.jsonb_typeof(value) == "string", text.op("~")(_PG_NUMBER)), sa.cast(text, sa.Numeric)),
        else_=sa.null(),
    )


def _number_test(name: str, op: str, value: float) -> sa.ColumnElement[bool]:
    """greater / less / equals on the attribute read as a number (a JSON number or a numeric string)."""
    number = _pg_number(name)
    compared = number > value if op == "greater" else number < value if op == "less" else number == value
    return _PerDialect(_sqlite_number_test(name, op, value), _known(compared))


def _plain(value: str) -> bool:
    """Text that JSON writes as itself (no escapes), so it must appear verbatim in the stored document."""
    return value.isascii() and value.isprintable() and '"' not in value and "\\" not in value


def _sqlite_prefilter(column: sa.Column[Any], needle: str) -> sa.ColumnElement[bool]:
    """A cheap necessary condition (a substring of the raw JSON text) SQLite checks before parsing it."""
    return _PerDialect(sa.func.instr(column, needle) > 0, sa.true())


def attribute_exists(name: str) -> sa.ColumnElement[bool]:
    """The attribute is set (a JSON null counts as missing)."""
    return _present(name)


def attribute_equals(name: str, value: str | float) -> sa.ColumnElement[bool]:
    """Equal as text for a text value, as a number for a number (so "42" equals 42 and 42.0)."""
    if isinstance(value, str):
        equal = _known(_text(name) == value)
        return sa.and_(_sqlite_prefilter(people.c.attributes, value), equal) if _plain(value) else equal
    return _number_test(name, "equals", value)


def attribute_contains(name: str, value: str) -> sa.ColumnElement[bool]:
    """The attribute's text contains `value`, ignoring case."""
    return _known(_text(name).icontains(value, autoescape=True))


def attribute_compare(name: str, op: str, value: float) -> sa.ColumnElement[bool]:
    """greater / less, numbers compared as numbers; a non-numeric value never matches."""
    return _number_test(name, op, value)


def has_tag(tag: str) -> sa.ColumnElement[bool]:
    """`tag` is in the person's tags (exact, case-sensitive, as stored)."""
    each = sa.func.json_each(people.c.tags).table_valued("value")
    sqlite: sa.ColumnElement[bool] = sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == tag))
    if _plain(tag):
        sqlite = sa.and_(sa.func.instr(people.c.tags, f'"{tag}"') > 0, sqlite)
    postgresql = sa.type_coerce(people.c.tags, JSONB).contains([tag])
    return _PerDialect(sqlite, postgresql)


def has_identifier(kind: str) -> sa.ColumnElement[bool]:
    """The person holds at least one identifier of this kind (email, phone or handle)."""
    # IN, not a correlated EXISTS: SQLite builds the set once (twice as fast over a million people).
    return people.c.id.in_(sa.select(identifiers.c.person_id).where(identifiers.c.kind == kind))


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
