"""import-undo of an import far larger than SQLite's bind-variable limit, through the CLI, on both engines."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from herald.db.contacts_tables import batch_changes, identifiers, import_batches, people, source_records
from tests.helpers import cli

EXISTING = 1_000  # people a first import created, that the big one then updates


def count(engine: sa.Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0)


def batch_of(output: str) -> int:
    match = re.search(r"batch (\d+)", output)
    assert match, output
    return int(match.group(1))


# 40,000 is past SQLite's bind-variable limit (32,766), which an id list would hit; `make soak` runs the
# 150,000-row case (about 50 s on SQLite and 2 min on PostgreSQL on a busy 2-core machine, mostly the import).
@pytest.mark.slow
@pytest.mark.parametrize("people_count", [40_000, pytest.param(150_000, marks=pytest.mark.soak)])
def test_undo_of_a_large_import_restores_and_removes_everything(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path, people_count: int
) -> None:
    small = tmp_path / "existing.csv"
    small.write_text("email,first name\n" + "".join(f"p{i}@example.com,P{i}\n" for i in range(EXISTING)))
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as out:
        out.write("email,first name,company\n")
        out.writelines(f"p{i}@example.com,P{i},Acme\n" for i in range(people_count))
    first = cli("contacts", "import", str(small))
    assert first.exit_code == 0, first.output
    started = time.monotonic()
    second = cli("contacts", "import", str(big))
    imported = time.monotonic()
    assert second.exit_code == 0, second.output
    assert f"created={people_count - EXISTING}" in second.output and f"updated={EXISTING}" in second.output
    batch = batch_of(second.output)
    assert count(engine, batch_changes, batch_changes.c.batch_id == batch) == EXISTING

    undone = cli("contacts", "import-undo", str(batch))
    finished = time.monotonic()
    assert undone.exit_code == 0, undone.output
    assert f"{people_count - EXISTING} people removed, {EXISTING} restored" in undone.output
    print(f"import {imported - started:.1f} s, undo {finished - imported:.1f} s")

    assert count(engine, people) == EXISTING
    assert count(engine, people, people.c.company.is_not(None)) == 0  # the updates are taken back
    assert count(engine, identifiers) == EXISTING and count(engine, source_records) == EXISTING
    assert count(engine, batch_changes) == 0
    with engine.connect() as conn:
        assert conn.scalar(sa.select(import_batches.c.status).where(import_batches.c.id == batch)) == "undone"
    # The first import can be undone too now that nothing builds on it.
    assert cli("contacts", "import-undo", str(batch_of(first.output))).exit_code == 0
    assert count(engine, people) == 0
