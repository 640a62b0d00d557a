"""Two imports racing over the same people (PostgreSQL in distributed mode) make one person each."""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa

from herald.contacts import importing
from herald.core.clock import FrozenClock
from herald.db.contacts_tables import identifiers, merge_suggestions, people


def test_overlapping_imports_at_the_same_time(engine: sa.Engine, clock: FrozenClock, tmp_path: Path) -> None:
    rows = [f"shared{i}@example.com,Shared{i}\n" for i in range(3000)]
    files = []
    for name, extra in (("a.csv", "only-a"), ("b.csv", "only-b")):
        own = [f"{extra}{i}@example.com,Own{i}\n" for i in range(500)]
        path = tmp_path / name
        # Interleave so both imports reach the shared addresses in every chunk.
        path.write_text("email,first name\n" + "".join(x for pair in zip(rows, own * 6, strict=False) for x in pair))
        files.append(path)
    reports: list[importing.ImportReport] = []
    errors: list[BaseException] = []

    def run(path: Path) -> None:
        try:
            reports.append(importing.run_import(engine, clock, path))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f,)) for f in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r.status for r in reports] == ["done", "done"]
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(people)) == 3000 + 500 + 500
        assert conn.scalar(sa.select(sa.func.count()).select_from(identifiers)) == 4000
    created = sum(r.counts["created"] for r in reports)
    assert created == 4000


def test_the_same_file_imported_twice_at_once_makes_one_person_per_identifier(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    # Households share landlines (suggestions) and every address comes twice: both runs race on every key.
    lines = [f"same{i}@example.com,Same{i},+1 415 555 {i // 2:04d}\n" for i in range(2500)]
    path = tmp_path / "same.csv"
    path.write_text("email,first name,phone\n" + "".join(lines))
    reports: list[importing.ImportReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            reports.append(importing.run_import(engine, clock, path))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r.status for r in reports] == ["done", "done"]
    with engine.connect() as conn:
        per_key = conn.execute(
            sa.select(
                identifiers.c.kind, identifiers.c.key, sa.func.count(sa.distinct(identifiers.c.person_id))
            ).group_by(identifiers.c.kind, identifiers.c.key)
        ).all()
        active = conn.scalar(sa.select(sa.func.count()).select_from(people).where(people.c.status == "active"))
        suggested = conn.scalar(sa.select(sa.func.count()).select_from(merge_suggestions))
    assert len(per_key) == 2500 + 1250
    assert all(count == 1 for _, _, count in per_key)
    assert active == 2500
    # One person per e-mail, whichever run created them; the other run found them all.
    assert sum(r.counts["created"] for r in reports) == 2500
    # Each landline is shared by two people with different names: one suggestion per pair, stored once.
    assert suggested == 1250
    assert sum(r.counts["suggested"] for r in reports) == 1250
