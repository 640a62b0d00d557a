"""attribute_numbers (numeric attributes as rows, kept by triggers on people; backfilled), identifiers by kind

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 01:30:00
"""

# ruff: noqa: S608 (the SQL is built from this file's own constants, never from input)
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# Frozen copies of contacts/audience.py's number rule at this revision (migrations may not import slices):
# a JSON number, or a string with an optional sign, digits and at most one point (no spaces, no exponent);
# booleans are not numbers. Strings over 16,000 characters are not numbers either: PostgreSQL's NUMERIC
# refuses more than 16,383 digits after the point, and the write would fail instead of the count.
MAX_TEXT = 16_000
PG_NUMBER = r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"


# SQLite: the same language in GLOBs (a digit somewhere, only digits, points and signs, at most one point,
# a sign only in front), over json_each's value and type.
def _sqlite_select(person_id: str, attributes: str, source: str) -> str:
    return f"""
    SELECT {person_id}, key,
           CASE WHEN type IN ('integer', 'real') THEN value ELSE CAST(value AS REAL) END
    FROM {source}json_each({attributes})
    WHERE json_type({attributes}) = 'object'
      AND (type IN ('integer', 'real')
           OR (type = 'text' AND length(value) <= {MAX_TEXT}
               AND value GLOB '*[0-9]*' AND NOT value GLOB '*[^0-9.+-]*'
               AND NOT value GLOB '*.*.*' AND NOT value GLOB '?*[+-]*'))"""


def _sqlite_insert(select: str) -> str:
    # OR IGNORE: a hand-written document with a repeated key keeps its first number, never fails the write.
    return f"INSERT OR IGNORE INTO attribute_numbers (person_id, name, number) {select}"


_SQLITE_NEW = _sqlite_insert(_sqlite_select("NEW.id", "NEW.attributes", ""))
SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER people_attribute_numbers_insert AFTER INSERT ON people
    BEGIN {_SQLITE_NEW}; END""",
    f"""CREATE TRIGGER people_attribute_numbers_update AFTER UPDATE OF id, attributes ON people
    WHEN OLD.id IS NOT NEW.id OR OLD.attributes IS NOT NEW.attributes
    BEGIN DELETE FROM attribute_numbers WHERE person_id = OLD.id; {_SQLITE_NEW}; END""",
    """CREATE TRIGGER people_attribute_numbers_delete AFTER DELETE ON people
    BEGIN DELETE FROM attribute_numbers WHERE person_id = OLD.id; END""",
)


# PostgreSQL: statement triggers over the transition tables, so a COPY of 2,000 people is one insert.
# (A transition table cannot be combined with a column list, so every UPDATE of people runs the update
# function; it touches only the rows whose attributes or id changed.)
def _pg_select(source: str) -> str:
    text = "(a.value #>> '{}')"
    return f"""
    SELECT p.id, a.key, {text}::numeric
    FROM {source} p
    CROSS JOIN LATERAL jsonb_each(
        CASE WHEN jsonb_typeof(p.attributes) = 'object' THEN p.attributes ELSE '{{}}'::jsonb END
    ) a
    WHERE (jsonb_typeof(a.value) = 'number'
           OR (jsonb_typeof(a.value) = 'string' AND length({text}) <= {MAX_TEXT} AND {text} ~ '{PG_NUMBER}'))"""


_PG_INSERT = "INSERT INTO attribute_numbers (person_id, name, number)"
PG_FUNCTIONS = (
    f"""CREATE FUNCTION herald_attribute_numbers_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_PG_INSERT} {_pg_select("new_people")};
    RETURN NULL;
END $$""",
    f"""CREATE FUNCTION herald_attribute_numbers_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM attribute_numbers t USING old_people o
    WHERE t.person_id = o.id
      AND NOT EXISTS (SELECT 1 FROM new_people n WHERE n.id = o.id AND n.attributes = o.attributes);
    {_PG_INSERT} {_pg_select("new_people")}
      AND NOT EXISTS (SELECT 1 FROM old_people o WHERE o.id = p.id AND o.attributes = p.attributes);
    RETURN NULL;
END $$""",
    """CREATE FUNCTION herald_attribute_numbers_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM attribute_numbers t USING old_people o WHERE t.person_id = o.id;
    RETURN NULL;
END $$""",
)
PG_TRIGGERS = (
    """CREATE TRIGGER people_attribute_numbers_insert AFTER INSERT ON people
    REFERENCING NEW TABLE AS new_people FOR EACH STATEMENT EXECUTE FUNCTION herald_attribute_numbers_inserted()""",
    """CREATE TRIGGER people_attribute_numbers_update AFTER UPDATE ON people
    REFERENCING OLD TABLE AS old_people NEW TABLE AS new_people
    FOR EACH STATEMENT EXECUTE FUNCTION herald_attribute_numbers_updated()""",
    """CREATE TRIGGER people_attribute_numbers_delete AFTER DELETE ON people
    REFERENCING OLD TABLE AS old_people FOR EACH STATEMENT EXECUTE FUNCTION herald_attribute_numbers_deleted()""",
)
TRIGGER_NAMES = (
    "people_attribute_numbers_insert",
    "people_attribute_numbers_update",
    "people_attribute_numbers_delete",
)
FUNCTION_NAMES = (
    "herald_attribute_numbers_inserted",
    "herald_attribute_numbers_updated",
    "herald_attribute_numbers_deleted",
)


def create_triggers(conn: sa.Connection) -> None:
    """The triggers that keep attribute_numbers (a later migration that rebuilds people on SQLite calls this)."""
    statements = SQLITE_TRIGGERS if conn.dialect.name == "sqlite" else (*PG_FUNCTIONS, *PG_TRIGGERS)
    for statement in statements:
        conn.exec_driver_sql(statement)


def _backfill(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_sqlite_insert(_sqlite_select("people.id", "people.attributes", "people, ")))
    else:
        conn.exec_driver_sql(f"{_PG_INSERT} {_pg_select('people')}")


def upgrade() -> None:
    op.create_table(
        "attribute_numbers",
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("number", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("person_id", "name", name=op.f("pk_attribute_numbers")),
        sqlite_with_rowid=False,
    )
    conn = op.get_bind()
    # Triggers first, then the backfill, in the migration's transaction: no write falls between the two.
    create_triggers(conn)
    _backfill(conn)
    # The index after the rows: one sort instead of a million inserts into a B-tree.
    op.create_index("ix_attribute_numbers_name_number", "attribute_numbers", ["name", "number", "person_id"])
    # "Has a phone" as a covering index scan in person order, not a row fetch per identifier.
    op.create_index("ix_identifiers_kind_person_id", "identifiers", ["kind", "person_id"])


def downgrade() -> None:
    conn = op.get_bind()
    for name in TRIGGER_NAMES:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        else:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON people")
    if conn.dialect.name == "postgresql":
        for name in FUNCTION_NAMES:
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index("ix_identifiers_kind_person_id", table_name="identifiers")
    op.drop_index("ix_attribute_numbers_name_number", table_name="attribute_numbers")
    op.drop_table("attribute_numbers")
