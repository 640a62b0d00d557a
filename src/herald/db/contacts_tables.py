"""The contacts slice's tables: people, their identifiers, imports, merges and duplicate suggestions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from herald.db.tables import id_column, metadata, ref_column
from herald.db.types import JSONType, UTCDateTime

import_batches = sa.Table(
    "import_batches",
    metadata,
    id_column(),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("format", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | running | done | failed | undone
    sa.Column("default_region", sa.String(2), nullable=False),
    sa.Column("total_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("processed_rows", sa.Integer, nullable=False, server_default="0"),
    sa.Column("counts", JSONType, nullable=False),
    sa.Column("error", sa.Text),  # why a failed batch failed, for people
    sa.Column("error_code", sa.String(64)),  # … and for programs (a HeraldError code)
    sa.Column("encoding", sa.String(32)),  # how the file was decoded
    sa.Column("encoding_guessed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("undone_at", UTCDateTime),
    sa.Column("job_id", sa.BigInteger),  # the durable job that runs it (jobs table); none for CLI imports
)


people = sa.Table(
    "people",
    metadata,
    id_column(),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),  # active | merged | erased
    sa.Column("first_name", sa.String(200)),
    sa.Column("last_name", sa.String(200)),
    sa.Column("company", sa.String(300)),
    sa.Column("country", sa.String(2)),
    sa.Column("locale", sa.String(35)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("timezone_source", sa.String(32)),
    sa.Column("attributes", JSONType, nullable=False),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("locked_fields", JSONType, nullable=False),
    sa.Column("merged_into_id", sa.BigInteger, sa.ForeignKey("people.id"), index=True),
    sa.Column("created_batch_id", sa.BigInteger, sa.ForeignKey("import_batches.id"), index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Segment counts (contacts/audience.py): "created within N days" becomes a covering range scan. Not
    # (status, created_at): SQLite would then walk every active person through the index, fetching rows
    # in created_at order (random reads: 15 s instead of a 0.5 s scan over a million people).
    sa.Index("ix_people_created_at_status", "created_at", "status"),
)


class _Number(sa.TypeDecorator[int | float]):
    """NUMERIC read back as the JSON would give it: an int when whole (exact, even past 2**53), else a float.

    PostgreSQL keeps the exact decimal and SQLite (NUMERIC affinity) keeps integers as integers, so both
    engines hand back the same Python values (backups compare tables across engines).
    """

    impl = sa.Numeric
    cache_ok = True

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        # The driver's value as it comes (Decimal from psycopg, int or float from sqlite3): Numeric's own
        # processors would go through float (or "%.10f") and round integers past 2**53.
        return _plain_number


def _plain_number(value: Any) -> int | float | None:
    if isinstance(value, Decimal):
        return int(value) if value.is_finite() and value == value.to_integral_value() else float(value)
    return value  # type: ignore[no-any-return]


# Derived from people.attributes and kept by database triggers on `people` (migration 0014), so every
# write path (upsert, COPY imports, merges, erasure, undo, restore) keeps it equal to the JSON: one row
# per attribute that reads as a number (contacts/audience.py's rule). Segment conditions that compare
# numbers read it as a set of person ids instead of parsing every person's JSON. Backups leave it out
# (`info["derived"]`): restoring `people` rebuilds it. No foreign key: PostgreSQL would check it before
# the delete trigger has removed the rows. A SQLite batch migration of `people` (copy and rename) drops
# the triggers; such a migration must create them again (tests/integration/test_attribute_index.py).
attribute_numbers = sa.Table(
    "attribute_numbers",
    metadata,
    sa.Column("person_id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("number", _Number(), nullable=False),
    sa.Index("ix_attribute_numbers_name_number", "name", "number", "person_id"),
    sqlite_with_rowid=False,
    info={"derived": "kept by triggers on people from people.attributes"},
)


identifiers = sa.Table(
    "identifiers",
    metadata,
    id_column(),
    ref_column("person_id", "people"),
    sa.Column("kind", sa.String(16), nullable=False),  # email | phone | handle
    sa.Column("value", sa.String(320), nullable=False),  # as given
    sa.Column("key", sa.String(320), nullable=False),  # normalised match key
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("import_batches.id"), index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The constraint, not a check-then-insert, is what makes one identifier mean one person.
    sa.UniqueConstraint("kind", "key"),
    # Segment counts: "has a phone" as a covering scan, in person order (migration 0014).
    sa.Index("ix_identifiers_kind_person_id", "kind", "person_id"),
)


tombstones = sa.Table(
    "tombstones",
    metadata,
    id_column(),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


source_records = sa.Table(
    "source_records",
    metadata,
    id_column(),
    ref_column("batch_id", "import_batches"),
    ref_column("person_id", "people"),
    sa.Column("file_name", sa.String(500), nullable=False),
    sa.Column("row_number", sa.Integer, nullable=False),
    sa.Column("raw", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


import_rejects = sa.Table(
    "import_rejects",
    metadata,
    id_column(),
    ref_column("batch_id", "import_batches"),
    sa.Column("row_number", sa.Integer, nullable=False),
    # reject: the row was not imported; warning: it was, without the invalid value named here.
    sa.Column("kind", sa.String(16), nullable=False, server_default="reject"),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("field", sa.String(100)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raw", JSONType, nullable=False),
)


batch_changes = sa.Table(
    "batch_changes",
    metadata,
    id_column(),
    ref_column("batch_id", "import_batches"),
    ref_column("person_id", "people"),
    sa.Column("before", JSONType, nullable=False),  # the person's fields before this batch first touched them
    sa.UniqueConstraint("batch_id", "person_id"),
)


merges = sa.Table(
    "merges",
    metadata,
    id_column(),
    ref_column("survivor_id", "people"),
    ref_column("merged_id", "people"),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("import_batches.id"), index=True),
    sa.Column("snapshot", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("undone_at", UTCDateTime),
    sa.Column("undone_by", sa.String(200)),
)


merge_suggestions = sa.Table(
    "merge_suggestions",
    metadata,
    id_column(),
    ref_column("person_a_id", "people"),
    ref_column("person_b_id", "people"),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | merged | dismissed
    sa.Column("batch_id", sa.BigInteger, sa.ForeignKey("import_batches.id"), index=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Why the pair is worth a look, as data: [{"kind": "shared_phone", "detail": "+14155550101"}, …]
    sa.Column("evidence", JSONType, nullable=False, server_default="[]"),
    sa.Column("decided_at", UTCDateTime),  # when it was dismissed or merged
    sa.Column("decided_by", sa.String(200)),
    sa.UniqueConstraint("person_a_id", "person_b_id"),
)
