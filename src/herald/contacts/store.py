"""Read and write people rows; every other contacts module goes through these helpers."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.contacts.survivorship import FIELD_COLUMNS, PersonFields, person_fields
from herald.core.errors import ConflictError, NotFoundError
from herald.db.contacts_tables import identifiers, people, tombstones


def as_survivorship(row: Any) -> PersonFields:
    return PersonFields(
        values=person_fields(row), locked=frozenset(row["locked_fields"] or []), updated_at=row["updated_at"]
    )


def get_person(conn: sa.Connection, person_id: int, *, for_update: bool = False) -> Any:
    query = sa.select(people).where(people.c.id == person_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"No person with id {person_id}.", id=person_id)
    return row


def get_active_person(conn: sa.Connection, person_id: int, *, for_update: bool = False) -> Any:
    row = get_person(conn, person_id, for_update=for_update)
    if row["status"] != "active":
        hint = f" (merged into {row['merged_into_id']})" if row["merged_into_id"] else ""
        raise ConflictError(f"Person {person_id} is {row['status']}{hint}.", id=person_id, status=row["status"])
    return row


def people_by_id(conn: sa.Connection, ids: Iterable[int]) -> dict[int, Any]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = conn.execute(sa.select(people).where(people.c.id.in_(wanted))).mappings().all()
    return {row["id"]: row for row in rows}


# What the import's matcher and journal read of a person (store.people_by_id reads every column).
_MATCH_COLUMNS = ("id", "status", "merged_into_id", "created_batch_id", *FIELD_COLUMNS)
_JSON_COLUMNS = frozenset(("attributes", "tags", "locked_fields"))


def people_for_matching(conn: sa.Connection, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """people_by_id() for an import chunk: only the columns matching needs, read on the driver.

    A chunk reloads thousands of people; SQLAlchemy's per-value result processing cost more than the query.
    """
    wanted = list(set(ids))
    found: dict[int, dict[str, Any]] = {}
    sqlite = conn.dialect.name == "sqlite"
    decode = [i for i, c in enumerate(_MATCH_COLUMNS) if c in _JSON_COLUMNS] if sqlite else []
    for start in range(0, len(wanted), 5000):  # bounded bind variables per statement
        part = wanted[start : start + 5000]
        where = f"IN ({', '.join('?' * len(part))})" if sqlite else "= ANY(%s)"
        sql = f"SELECT {', '.join(_MATCH_COLUMNS)} FROM people WHERE id {where}"  # noqa: S608 - our own names
        for row in conn.exec_driver_sql(sql, tuple(part) if sqlite else (part,)):
            values = list(row)
            for i in decode:  # PostgreSQL's driver decodes JSON itself; SQLite stores it as text
                values[i] = json.loads(values[i]) if values[i] is not None else None
            found[values[0]] = dict(zip(_MATCH_COLUMNS, values, strict=True))
    return found


def identifiers_of(conn: sa.Connection, person_id: int) -> list[dict[str, Any]]:
    query = sa.select(identifiers).where(identifiers.c.person_id == person_id).order_by(identifiers.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def lookup_keys(conn: sa.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Map (kind, key) → person id for the keys that exist: one indexed lookup per kind and chunk.

    Straight to the driver: an import asks for thousands of keys per chunk, and binding each through
    SQLAlchemy's expanding IN costs more than the lookup. PostgreSQL takes the keys as one array
    (`= ANY`), SQLite as bounded parameter lists.
    """
    by_kind: dict[str, list[str]] = {}
    for kind, key in set(keys):
        by_kind.setdefault(kind, []).append(key)
    found: dict[tuple[str, str], int] = {}
    # Filter on kind too: the unique index is (kind, key), and without its leading column the
    # database scans the whole table — an import would slow down as the table grows.
    for kind, wanted in by_kind.items():
        for sql, params in _key_queries(conn.dialect.name, kind, wanted):
            for key, pid in conn.exec_driver_sql(sql, params):
                found[(kind, key)] = pid
    return found


def _key_queries(dialect: str, kind: str, wanted: list[str]) -> list[tuple[str, tuple[Any, ...]]]:
    select = "SELECT key, person_id FROM identifiers WHERE kind = "
    if dialect == "postgresql":
        return [(select + "%s AND key = ANY(%s)", (kind, wanted))]
    queries = []
    for start in range(0, len(wanted), 5000):  # SQLite bounds the parameters of one statement
        part = wanted[start : start + 5000]
        queries.append((f"{select}? AND key IN ({', '.join('?' * len(part))})", (kind, *part)))
    return queries


def tombstone_hash(secret: str, kind: str, key: str) -> str:
    # Keyed, so a leaked table cannot be reversed by hashing a list of known addresses.
    return hmac.new(secret.encode(), f"{kind}:{key}".encode(), hashlib.sha256).hexdigest()


def tombstoned(conn: sa.Connection, hashes: Iterable[str]) -> set[str]:
    wanted = list(set(hashes))
    found: set[str] = set()
    for start in range(0, len(wanted), 5000):
        part = wanted[start : start + 5000]
        found.update(conn.scalars(sa.select(tombstones.c.key_hash).where(tombstones.c.key_hash.in_(part))))
    return found


def update_person(conn: sa.Connection, person_id: int, values: dict[str, Any], now: dt.datetime) -> None:
    conn.execute(people.update().where(people.c.id == person_id).values(**values, updated_at=now))


# What the delivery planner reads of a person (planner.Recipient.fields), in this order.
PLANNING_FIELDS = ("first_name", "last_name", "company", "country", "locale", "timezone", "attributes")
# Ids per statement on the bulk read paths: well under SQLite's bind-variable limit on any build.
PLANNING_CHUNK = 900


@dataclass(frozen=True, slots=True)
class PlanningProfile:
    """One active person as the planner sees them: fields, e-mail values and E.164 phone keys, oldest first."""

    person_id: int
    fields: dict[str, Any]
    emails: tuple[str, ...]
    phones: tuple[str, ...]


def people_for_planning(conn: sa.Connection, ids: Iterable[int]) -> dict[int, PlanningProfile]:
    """The active people among `ids` with their addresses: two queries per 900 ids, read on the driver.

    A campaign plans 100,000 people; SQLAlchemy's per-value result processing would cost more than the
    queries. Merged, erased or unknown ids are left out: nobody plans a message to them.
    """
    wanted = sorted(set(ids))
    sqlite = conn.dialect.name == "sqlite"
    fields: dict[int, dict[str, Any]] = {}
    addresses: dict[int, tuple[list[str], list[str]]] = {}
    for start in range(0, len(wanted), PLANNING_CHUNK):
        part = wanted[start : start + PLANNING_CHUNK]
        where, params = (f"IN ({', '.join('?' * len(part))})", tuple(part)) if sqlite else ("= ANY(%s)", (part,))
        sql = f"SELECT id, {', '.join(PLANNING_FIELDS)} FROM people WHERE status = 'active' AND id {where}"  # noqa: S608 - our own names
        for pid, *values in conn.exec_driver_sql(sql, params).fetchall():
            row = dict(zip(PLANNING_FIELDS, values, strict=True))
            if sqlite:  # PostgreSQL's driver decodes JSON itself; SQLite stores it as text
                row["attributes"] = json.loads(row["attributes"]) if row["attributes"] else {}
            fields[pid] = row
            addresses[pid] = ([], [])
        sql = f"SELECT person_id, kind, value, key FROM identifiers WHERE person_id {where} ORDER BY id"  # noqa: S608
        for pid, kind, value, key in conn.exec_driver_sql(sql, params).fetchall():
            if pid in addresses and kind in ("email", "phone"):
                emails, phones = addresses[pid]
                (emails if kind == "email" else phones).append(value if kind == "email" else key)
    return {pid: PlanningProfile(pid, row, *map(tuple, addresses[pid])) for pid, row in fields.items()}
