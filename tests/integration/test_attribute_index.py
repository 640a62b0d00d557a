"""attribute_numbers equals what people.attributes says after every kind of write, on both engines."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from herald.backup.backup import write_backup
from herald.backup.restore import restore_backup
from herald.contacts import importing, service
from herald.contacts.audience import _PG_NUMBER
from herald.contacts.erase import erase_person
from herald.contacts.service import ContactInput
from herald.contacts.undo import undo_import
from herald.core.actor import SYSTEM
from herald.core.clock import FrozenClock
from herald.db import migrate
from herald.db.bulk import COPY_FROM, bulk_insert
from herald.db.contacts_tables import attribute_numbers, people
from herald.db.engine import create_db_engine
from tests.conftest import empty_database_url
from tests.helpers import in_unit

NUMBER = re.compile(_PG_NUMBER)
MAX_TEXT = 16_000


def number_of(value: Any) -> Decimal | None:
    """The number rule, written again in Python: JSON numbers, and strings that read as one; no booleans."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, str) and len(value) <= MAX_TEXT and NUMBER.match(value):
        return Decimal(value)
    return None


def as_float(number: Decimal | float) -> float:
    """One spelling for both engines: SQLite reads a 16,000-digit string as infinity, PostgreSQL exactly."""
    try:
        return float(number)
    except OverflowError:
        return float("inf")


def expected(engine: sa.Engine) -> set[tuple[int, str, float]]:
    """What the JSON says: (person, name, number) for every numeric attribute of every person."""
    rows = set()
    with engine.connect() as conn:
        for person_id, attributes in conn.execute(sa.select(people.c.id, people.c.attributes)):
            if isinstance(attributes, str):  # pragma: no cover - JSONType decodes on both engines
                attributes = json.loads(attributes)
            for name, value in (attributes if isinstance(attributes, dict) else {}).items():
                number = number_of(value)
                if number is not None:
                    rows.add((person_id, name, as_float(number)))
    return rows


def indexed(engine: sa.Engine) -> set[tuple[int, str, float]]:
    with engine.connect() as conn:
        found = conn.execute(sa.select(attribute_numbers)).all()
    return {(row.person_id, row.name, as_float(row.number)) for row in found}


def assert_index_matches(engine: sa.Engine) -> None:
    assert indexed(engine) == expected(engine)


def upsert(engine: sa.Engine, clock: FrozenClock, email: str, attributes: dict[str, Any]) -> int:
    clock.advance(dt.timedelta(minutes=1))
    person_id, _ = service.upsert_contact(
        engine, clock, ContactInput(emails=[email], fields={"attributes": attributes}), default_region="US", source="t"
    )
    return person_id


def test_the_index_follows_upserts_merges_unmerges_and_erasure(engine: sa.Engine, clock: FrozenClock) -> None:
    ann = upsert(engine, clock, "ann@example.com", {"age": "34", "plan": "pro", "score": "-1.5", "odd": "1e5"})
    bob = upsert(engine, clock, "bob@example.com", {"age": "19", "zip": "+07", "flag": "true", "dots": "1.2.3"})
    assert {(ann, "age", 34.0), (ann, "score", -1.5), (bob, "age", 19.0), (bob, "zip", 7.0)} <= indexed(engine)
    assert_index_matches(engine)

    upsert(engine, clock, "ann@example.com", {"age": "35", "weight": ".5"})  # changes one, adds one
    assert (ann, "age", 35.0) in indexed(engine)
    assert_index_matches(engine)

    merge_id = in_unit(engine, clock, SYSTEM, service.merge_contacts, ann, bob, reason="test")
    assert_index_matches(engine)
    in_unit(engine, clock, SYSTEM, service.unmerge_contacts, merge_id)
    assert_index_matches(engine)

    in_unit(engine, clock, SYSTEM, erase_person, bob)
    assert not {row for row in indexed(engine) if row[0] == bob}
    assert_index_matches(engine)


def test_the_index_follows_bulk_imports_and_their_undo(engine: sa.Engine, clock: FrozenClock, tmp_path: Path) -> None:
    upsert(engine, clock, "p0@example.com", {"age": "50"})
    # More rows than COPY_FROM, so PostgreSQL writes people with COPY (row triggers fire; so do these).
    rows = "\n".join(f"p{i}@example.com,{i % 90 + 10},{'x' if i % 7 == 0 else i / 4}" for i in range(COPY_FROM + 20))
    first = tmp_path / "first.csv"
    first.write_text(f"email,age,rank\n{rows}\n")
    report = importing.run_import(engine, clock, first, default_region="US")
    assert_index_matches(engine)
    assert len(indexed(engine)) > COPY_FROM

    second = tmp_path / "second.csv"  # updates existing people in bulk
    second.write_text("email,age\n" + "\n".join(f"p{i}@example.com,{i}" for i in range(COPY_FROM + 20)) + "\n")
    again = importing.run_import(engine, clock, second, default_region="US")
    assert_index_matches(engine)

    in_unit(engine, clock, SYSTEM, undo_import, again.batch_id)
    assert_index_matches(engine)
    in_unit(engine, clock, SYSTEM, undo_import, report.batch_id)
    assert_index_matches(engine)
    assert {row[1:] for row in indexed(engine)} == {("age", 50.0)}


def test_direct_writes_and_odd_documents_keep_the_index_equal(engine: sa.Engine, clock: FrozenClock) -> None:
    now = clock.now()
    documents: list[Any] = [
        {"a": 1, "b": 2.5, "c": True, "d": None, "e": "12", "f": " 12", "g": "1-", "h": "-.5", "i": [1], "j": {"k": 1}},
        {"a": "1.", "b": ".", "c": "+", "d": "", "e": "0x10", "f": "1_000", "g": "12345678901234"},
        {"long": "1" * MAX_TEXT, "too long": "1" * (MAX_TEXT + 1)},  # the second is not a number
        [1, 2, 3],  # not an object: no attributes at all
        {},
    ]
    columns = ("status", "attributes", "tags", "locked_fields", "created_at", "updated_at")
    with engine.begin() as conn:  # many statements at once, as db/bulk.py writes them (COPY on PostgreSQL)
        bulk_insert(conn, people, columns, [("active", doc, [], [], now, now) for doc in documents * COPY_FROM])
    assert_index_matches(engine)
    with engine.begin() as conn:  # a set-based update of many people, and one that leaves attributes alone
        conn.execute(people.update().where(people.c.id % 3 == 0).values(attributes={"n": "3"}))
        conn.execute(people.update().values(status="active"))
    assert_index_matches(engine)
    with engine.begin() as conn:
        conn.execute(people.delete().where(people.c.id % 2 == 0))
    assert_index_matches(engine)


def test_a_restored_backup_has_the_index_once(
    engine: sa.Engine, clock: FrozenClock, db_kind: str, tmp_path: Path
) -> None:
    upsert(engine, clock, "ann@example.com", {"age": "34"})
    upsert(engine, clock, "bob@example.com", {"age": 19, "height": "1.8"})
    written = write_backup(engine, tmp_path / "b.zip", clock)
    assert "attribute_numbers" not in {entry.name for entry in written.manifest.tables}
    for url in empty_database_url(db_kind, tmp_path):
        target = create_db_engine(url)
        try:
            restore_backup(target, written.path)
            assert indexed(target) == indexed(engine) == expected(target)
            assert len(indexed(target)) == 3
        finally:
            target.dispose()


def test_the_migration_backfills_existing_people(db_kind: str, tmp_path: Path) -> None:
    for url in empty_database_url(db_kind, tmp_path):
        engine = create_db_engine(url)
        try:
            migrate.upgrade(engine, "0013")
            now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
            documents = [{"age": "41", "plan": "pro"}, {"age": 7.25, "x": False}, {"n": "-3"}, {}]
            with engine.begin() as conn:
                conn.execute(
                    sa.table(
                        "people",
                        sa.column("status"),
                        sa.column("attributes", people.c.attributes.type),
                        sa.column("tags", people.c.tags.type),
                        sa.column("locked_fields", people.c.locked_fields.type),
                        sa.column("created_at", people.c.created_at.type),
                        sa.column("updated_at", people.c.updated_at.type),
                    ).insert(),
                    [
                        {"status": "active", "attributes": d, "tags": [], "locked_fields": [], "created_at": now,
                         "updated_at": now}
                        for d in documents
                    ],
                )  # fmt: skip
            migrate.upgrade(engine)
            assert_index_matches(engine)
            assert len(indexed(engine)) == 3
            migrate.downgrade(engine, "0013")  # and back: the triggers go with the table
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE people SET attributes = attributes"))
                assert "attribute_numbers" not in sa.inspect(conn).get_table_names()
            migrate.upgrade(engine)
            assert_index_matches(engine)
        finally:
            engine.dispose()
