"""Backups on both engines: identical restore, cross-engine restore, refusals, schedule, worker, API."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from herald.api.app import create_app
from herald.backup.backup import write_backup
from herald.backup.format import BackupArchive
from herald.backup.restore import restore_backup
from herald.backup.schedule import apply_retention, run_due_backup
from herald.core.clock import FrozenClock
from herald.core.errors import BackupVerificationError, ConflictError
from herald.db import migrate
from herald.db.apikeys_tables import api_keys
from herald.db.backup_tables import backups
from herald.db.consent_tables import consent_events
from herald.db.contacts_tables import (
    batch_changes,
    identifiers,
    import_batches,
    import_rejects,
    merge_suggestions,
    merges,
    people,
    source_records,
    tombstones,
)
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from herald.db.schema import metadata
from herald.db.tables import instance_secrets
from herald.worker.loop import run_due_jobs
from tests.conftest import empty_database_url
from tests.helpers import cli

T0 = dt.datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=dt.UTC)
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
OTHER = {"sqlite": "postgres", "postgres": "sqlite"}


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def empty_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    yield from empty_database_url(db_kind, tmp_path)


@pytest.fixture
def other_empty_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    yield from empty_database_url(OTHER[db_kind], tmp_path)


@pytest.fixture
def target(empty_url: str) -> Iterator[sa.Engine]:
    eng = create_db_engine(empty_url)
    yield eng
    eng.dispose()


@pytest.fixture
def icu_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database whose text sorts by an ICU locale (not byte order)."""
    admin = os.environ["HERALD_TEST_PG_URL"]
    name = f"herald_icu_{uuid.uuid4().hex[:12]}"
    server = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.exec_driver_sql(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    try:
        yield make_url(admin).set(database=name).render_as_string(False)
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        server.dispose()


def seed(engine: sa.Engine) -> None:
    """Rows in most tables: unicode, JSON with unsorted keys, booleans, floats, odd time zones, self-refs."""
    later = T0 + dt.timedelta(minutes=5)
    with engine.begin() as conn:
        conn.execute(
            import_batches.insert(),
            [
                {
                    "id": 1,
                    "file_name": "kontakte-ü.csv",
                    "format": "csv",
                    "status": "done",
                    "default_region": "DE",
                    "total_rows": 3,
                    "processed_rows": 3,
                    "counts": {"merged": 1, "created": 2, "nested": {"z": [1, 2.5, None], "a": True}},
                    "created_at": T0,
                    "finished_at": later.astimezone(IST),
                }
            ],
        )
        person = {"locked_fields": [], "company": None, "country": None, "locale": None, "timezone": None}
        conn.execute(
            people.insert(),
            [
                # Person 1 was merged into person 3: a reference to a row that comes later.
                person
                | {
                    "id": 1,
                    "status": "merged",
                    "first_name": "Zoë",
                    "last_name": "Ångström",
                    "company": 'Ça & Co\n"quoted"',
                    "attributes": {"plan": "pro", "score": 0.1, "emoji": "🎉"},
                    "tags": ["vip", "β"],
                    "merged_into_id": None,  # set below, once person 3 exists
                    "created_batch_id": 1,
                    "created_at": T0,
                    "updated_at": later,
                },
                person
                | {
                    "id": 2,
                    "status": "active",
                    "first_name": "李",
                    "last_name": "雷",
                    "timezone": "Asia/Shanghai",
                    "attributes": {},
                    "tags": [],
                    "locked_fields": ["first_name"],
                    "merged_into_id": None,
                    "created_batch_id": None,
                    "created_at": T0.astimezone(IST),
                    "updated_at": T0,
                },
                person
                | {
                    "id": 3,
                    "status": "active",
                    "first_name": '=HYPERLINK("http://x","y")',
                    "last_name": "Lovelace",
                    "country": "GB",
                    "attributes": {"b": 1, "a": {"y": 2, "x": 1}, "big": 2**53 + 1},
                    "tags": ["a"],
                    "merged_into_id": None,
                    "created_batch_id": 1,
                    "created_at": T0,
                    "updated_at": T0,
                },
            ],
        )
        conn.execute(people.update().where(people.c.id == 1).values(merged_into_id=3))
        conn.execute(
            identifiers.insert(),
            [
                {"person_id": 1, "kind": "email", "value": "Zoe@Example.com", "key": "zoe@example.com",
                 "batch_id": 1, "created_at": T0},
                {"person_id": 2, "kind": "phone", "value": "+1 555 123 4567", "key": "+15551234567",
                 "batch_id": None, "created_at": T0},
                {"person_id": 3, "kind": "email", "value": "ada@example.org", "key": "ada@example.org",
                 "batch_id": 1, "created_at": T0},
            ],
        )  # fmt: skip
        conn.execute(
            consent_events.insert(),
            [
                {"person_id": 3, "channel": "email", "purpose": "marketing", "kind": "subscribed",
                 "explicit": True, "source": "import", "batch_id": 1, "note": None,
                 "occurred_at": T0 - dt.timedelta(days=400), "recorded_at": T0},
                {"person_id": 2, "channel": "sms", "purpose": "all", "kind": "unsubscribed",
                 "explicit": False, "source": "reply STOP", "batch_id": None, "note": "said \"stop\"\n",
                 "occurred_at": later.astimezone(IST), "recorded_at": later},
            ],
        )  # fmt: skip
        conn.execute(
            source_records.insert(),
            [{"batch_id": 1, "person_id": 3, "file_name": "kontakte-ü.csv", "row_number": 2,
              "raw": {"Phone": "+15551234567", "Email": "ada@example.org", "=cmd": "@x"}, "created_at": T0}],
        )  # fmt: skip
        conn.execute(
            import_rejects.insert(),
            [{"batch_id": 1, "row_number": 4, "reason": "no_identifier", "field": None,
              "message": "row has neither e-mail nor phone", "raw": {"Name": "—"}}],
        )  # fmt: skip
        conn.execute(
            batch_changes.insert(),
            [{"batch_id": 1, "person_id": 3, "before": {"first_name": None, "tags": []}}],
        )
        conn.execute(
            merges.insert(),
            [{"survivor_id": 3, "merged_id": 1, "actor": "ops@example.com", "reason": "same e-mail",
              "batch_id": 1, "snapshot": {"person": {"id": 1}}, "created_at": later, "undone_at": None,
              "undone_by": None}],
        )  # fmt: skip
        conn.execute(
            merge_suggestions.insert(),
            [{"person_a_id": 2, "person_b_id": 3, "score": 0.873412345678901, "reason": "similar name",
              "status": "open", "batch_id": 1, "created_at": T0}],
        )  # fmt: skip
        conn.execute(tombstones.insert(), [{"key_hash": "ab" * 32, "kind": "email", "created_at": T0}])
        # Text keys whose order differs between a locale collation and byte order.
        names = ["Zeta", "alpha", "Ärger", "_under", "éclair", "b", "B"]
        conn.execute(instance_secrets.insert(), [{"name": n, "value": f"v-{n}", "created_at": T0} for n in names])
        conn.execute(
            api_keys.insert(),
            [{"name": "ci", "prefix": "hk_abcdefg", "key_hash": "cd" * 32, "created_at": T0,
              "last_used_at": None, "revoked_at": later}],
        )  # fmt: skip


def dump(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as Python values, sorted by primary key."""
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = [dict(r) for r in conn.execute(sa.select(table)).mappings()]
            keys = [c.name for c in table.primary_key.columns]
            out[table.name] = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    return out


def row_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {t.name: conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0 for t in metadata.sorted_tables}


def rewrite_member(src: Path, dst: Path, member: str, old: str, new: str, *, fix_manifest: bool) -> None:
    """Copy a backup, editing one table file (and, if asked, its checksum in the manifest)."""
    with zipfile.ZipFile(src) as zin:
        contents = {name: zin.read(name) for name in zin.namelist()}
    text = contents[member].decode()
    assert old in text
    contents[member] = text.replace(old, new, 1).encode()
    if fix_manifest:
        manifest = json.loads(contents["manifest.json"])
        for entry in manifest["tables"]:
            if f"tables/{entry['name']}.jsonl" == member:
                entry["sha256"] = hashlib.sha256(contents[member]).hexdigest()
        contents["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in contents.items():
            zout.writestr(name, data)


def table_names(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sa.inspect(conn).get_table_names()


# --- backup and restore ---------------------------------------------------------------------------


def test_backup_then_restore_into_an_empty_database_is_identical(
    runtime: Runtime,
    cli_env: dict[str, str],
    empty_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed(runtime.engine)
    before = dump(runtime.engine)
    file = tmp_path / "out" / "herald.zip"

    made = cli("backup", "--out", str(file))
    assert made.exit_code == 0, made.output
    assert "verified" in made.output
    assert re.search(r"^\s+people\s+3$", made.output, re.M)
    assert re.search(r"^\s+instance_secrets\s+7$", made.output, re.M)

    row = dump(runtime.engine)["backups"][0]
    size = file.stat().st_size
    assert row["status"] == "verified" and row["kind"] == "manual" and row["verified_at"] is not None
    assert row["path"] == str(file.resolve()) and row["size_bytes"] == size
    assert row["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert row["table_counts"]["people"] == 3 and row["table_counts"]["instance_secrets"] == 7
    # The row describing the backup is written after the snapshot, so the backup holds no backups rows.
    assert row["table_counts"]["backups"] == 0

    monkeypatch.setenv("HERALD_DATABASE_URL", empty_url)
    restored = cli("restore", str(file))
    assert restored.exit_code == 0, restored.output
    assert "verified" in restored.output
    assert re.search(r"^\s+consent_events\s+2$", restored.output, re.M)

    target = create_db_engine(empty_url)
    try:
        assert migrate.current_revision(target) == migrate.current_revision(runtime.engine)
        after = dump(target)
        # The restore itself is on the record: the restored log, then who restored which file.
        restored_log = after.pop("audit_log")
        assert {**after, "audit_log": restored_log[: len(before["audit_log"])]} == before
        assert [
            (a["action"], a["actor"], a["actor_kind"], a["target"]) for a in restored_log[len(before["audit_log"]) :]
        ] == [("backup.restored", "cli", "cli", "herald.zip")]
    finally:
        target.dispose()


def test_a_backup_is_one_snapshot_and_does_not_block_writers(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    seed(engine)
    writes: list[str] = []

    def write_meanwhile(label: str, done: int, total: int) -> None:
        # Called while the backup's read transaction is open, before the later tables are read.
        if label == "backup api_keys" and not writes:
            with engine.begin() as conn:
                conn.execute(tombstones.insert().values(key_hash="ef" * 32, kind="phone", created_at=T0))
                conn.execute(people.update().values(first_name="changed"))
            writes.append(label)

    written = write_backup(engine, tmp_path / "snap.zip", clock, progress=write_meanwhile)
    assert writes, "the progress hook never ran"
    assert written.manifest.table_counts["tombstones"] == 1
    assert row_counts(engine)["tombstones"] == 2
    with BackupArchive(written.path) as archive:
        [entry] = [t for t in archive.manifest.tables if t.name == "people"]
        assert "changed" not in json.dumps(list(archive.rows(entry)))


def test_cross_engine_restore_verifies_and_checksums_agree(
    engine: sa.Engine, db_kind: str, other_empty_url: str, clock: FrozenClock, tmp_path: Path
) -> None:
    seed(engine)
    first = write_backup(engine, tmp_path / "a.zip", clock)
    assert first.manifest.source_engine == ("sqlite" if db_kind == "sqlite" else "postgresql")

    other = create_db_engine(other_empty_url)
    try:
        result = restore_backup(other, first.path)
        assert result.table_counts == first.manifest.table_counts
        assert dump(other) == dump(engine)
        # A backup of the restored copy, taken on the other engine, has the very same table checksums.
        second = write_backup(other, tmp_path / "b.zip", clock)
    finally:
        other.dispose()
    assert second.manifest.source_engine != first.manifest.source_engine
    assert [(t.name, t.rows, t.sha256) for t in second.manifest.tables] == [
        (t.name, t.rows, t.sha256) for t in first.manifest.tables
    ]


def test_text_keys_are_checksummed_in_byte_order_whatever_the_collation(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, icu_pg_url: str
) -> None:
    seed(engine)
    first = write_backup(engine, tmp_path / "a.zip", clock)
    icu = create_db_engine(icu_pg_url)
    try:
        with icu.connect() as conn:  # the premise: this database sorts text differently from bytes
            ordered = conn.scalars(
                sa.select(sa.column("n"))
                .select_from(sa.values(sa.column("n", sa.String), name="v").data([("B",), ("a",)]))
                .order_by(sa.column("n"))
            ).all()
        assert ordered == ["a", "B"]
        restore_backup(icu, first.path)
        second = write_backup(icu, tmp_path / "b.zip", clock)
    finally:
        icu.dispose()
    assert {t.name: t.sha256 for t in second.manifest.tables} == {t.name: t.sha256 for t in first.manifest.tables}


def test_restore_refuses_a_database_with_rows_and_changes_nothing(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    seed(engine)
    written = write_backup(engine, tmp_path / "b.zip", clock)
    before = dump(engine)

    with pytest.raises(ConflictError) as refused:
        restore_backup(engine, written.path)
    assert "empty database" in refused.value.message and "people" in refused.value.message

    result = cli("restore", str(written.path))
    assert result.exit_code == 1
    assert "empty database" in result.output
    assert dump(engine) == before


def test_restore_into_a_migrated_empty_database_and_insert_afterwards(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, target: sa.Engine
) -> None:
    seed(engine)
    written = write_backup(engine, tmp_path / "b.zip", clock)
    migrate.upgrade(target)  # tables exist but hold no rows: allowed
    restore_backup(target, written.path)

    # On PostgreSQL this only works because restore moved the id sequences past the restored ids.
    with target.begin() as conn:
        new_id = conn.scalar(
            people.insert()
            .values(attributes={}, tags=[], locked_fields=[], created_at=T0, updated_at=T0)
            .returning(people.c.id)
        )
        batch_id = conn.scalar(
            import_batches.insert()
            .values(file_name="x", format="csv", status="done", default_region="US", counts={}, created_at=T0)
            .returning(import_batches.c.id)
        )
    assert new_id == 4 and batch_id == 2


def test_a_tampered_backup_is_refused_naming_the_table(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, target: sa.Engine, cli_env: dict[str, str],
    empty_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    seed(engine)
    good = write_backup(engine, tmp_path / "good.zip", clock)
    bad = tmp_path / "bad.zip"
    rewrite_member(good.path, bad, "tables/people.jsonl", "李", "Li", fix_manifest=False)

    with pytest.raises(BackupVerificationError) as refused:
        restore_backup(target, bad)
    assert refused.value.fields["table"] == "people"
    assert "people" in refused.value.message and "damaged" in refused.value.message
    assert table_names(target) == []  # refused before migrating: the target is untouched

    monkeypatch.setenv("HERALD_DATABASE_URL", empty_url)
    result = cli("restore", str(bad))
    assert result.exit_code == 1 and "backup_verification_failed" in result.output
    assert "people" in result.output
    assert cli("verify-backup", str(bad)).exit_code == 1
    assert table_names(target) == []


def test_a_truncated_backup_is_refused(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, target: sa.Engine
) -> None:
    seed(engine)
    good = write_backup(engine, tmp_path / "good.zip", clock)
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.path.read_bytes()[: good.size_bytes // 2])
    with pytest.raises(BackupVerificationError, match="not a complete Herald backup"):
        restore_backup(target, cut)
    assert table_names(target) == []


def test_rows_that_do_not_round_trip_fail_verification_and_roll_back(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, target: sa.Engine
) -> None:
    """The file checks out (its manifest was fixed up), but the database gives back something else."""
    seed(engine)
    good = write_backup(engine, tmp_path / "good.zip", clock)
    odd = tmp_path / "odd.zip"
    # Same instant, written with an offset: a restore stores UTC, so the recomputed checksum differs.
    rewrite_member(
        good.path,
        odd,
        "tables/consent_events.jsonl",
        '"recorded_at":"2026-11-22T12:00:00.123456+00:00"',
        '"recorded_at":"2026-11-22T14:00:00.123456+02:00"',
        fix_manifest=True,
    )
    with BackupArchive(odd) as archive:
        archive.check_integrity()  # the file itself is consistent with its manifest

    with pytest.raises(BackupVerificationError) as failed:
        restore_backup(target, odd)
    assert failed.value.fields == {"table": "consent_events", "stage": "database"}
    assert "consent_events" in failed.value.message
    assert set(row_counts(target).values()) == {0}  # one transaction: everything rolled back


def test_restore_refuses_a_backup_from_an_unknown_schema_revision(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, target: sa.Engine
) -> None:
    good = write_backup(engine, tmp_path / "good.zip", clock)
    future = tmp_path / "future.zip"
    revision = good.manifest.alembic_revision
    assert revision
    rewrite_member(
        good.path, future, "manifest.json", f'"alembic_revision": "{revision}"',
        '"alembic_revision": "9999_future"', fix_manifest=False,
    )  # fmt: skip
    with pytest.raises(BackupVerificationError, match="9999_future"):
        restore_backup(target, future)
    assert table_names(target) == []


# --- scheduled backups ----------------------------------------------------------------------------


def scheduled_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    return [r for r in dump(engine)["backups"] if r["kind"] == "scheduled"]


def test_scheduled_backups_run_when_due_verify_and_keep_the_newest(runtime: Runtime, clock: FrozenClock) -> None:
    seed(runtime.engine)
    runtime.settings.backup_schedule = "off"
    assert run_due_backup(runtime) is None

    runtime.settings.backup_schedule = "daily"
    runtime.settings.backup_retention = 2
    first = run_due_backup(runtime)
    assert first is not None and first.exists()
    assert first.parent == runtime.settings.resolved_backup_dir
    [row] = scheduled_rows(runtime.engine)
    assert row["status"] == "verified" and row["verified_at"] == clock.now()
    assert row["table_counts"]["people"] == 3 and row["path"] == str(first)

    clock.advance(dt.timedelta(hours=6))  # same UTC day: not due
    assert run_due_backup(runtime) is None
    assert run_due_jobs(runtime) == 0

    made = [first]
    for _ in range(2):
        clock.advance(dt.timedelta(days=1))
        assert run_due_jobs(runtime) == 1
        made.append(sorted(runtime.settings.resolved_backup_dir.glob("*.zip"))[-1])

    assert not made[0].exists()  # retention 2: the oldest file is gone
    assert all(p.exists() for p in made[1:])
    rows = scheduled_rows(runtime.engine)
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in made[1:])
    assert {r["status"] for r in rows} == {"verified"}
    assert apply_retention(runtime) == []


def test_leftovers_of_a_killed_backup_are_cleaned_up_later(runtime: Runtime, clock: FrozenClock) -> None:
    directory = runtime.settings.resolved_backup_dir
    directory.mkdir(parents=True)
    old_tmp = directory / ".herald-20261120T000000Z-scheduled.zip.1a2b3c4d.tmp"
    old_scratch = directory / ".herald-verify-abc"
    fresh_tmp = directory / ".herald-20261122T115900Z-manual.zip.5e6f7a8b.tmp"
    old_tmp.write_bytes(b"PK half a zip")
    old_scratch.mkdir()
    (old_scratch / "verify.db").write_bytes(b"")
    fresh_tmp.write_bytes(b"PK a backup still being written")
    two_days_ago = (clock.now() - dt.timedelta(days=2)).timestamp()
    for path in (old_tmp, old_scratch):
        os.utime(path, (two_days_ago, two_days_ago))
    os.utime(fresh_tmp, (clock.now().timestamp(), clock.now().timestamp()))

    runtime.settings.backup_schedule = "daily"
    made = run_due_backup(runtime)
    assert made is not None and made.exists()
    assert not old_tmp.exists() and not old_scratch.exists()
    assert fresh_tmp.exists()


def test_a_failed_scheduled_backup_is_recorded_and_retried_later(
    runtime: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backup directory should be")
    runtime.settings.backup_dir = blocker
    runtime.settings.backup_schedule = "hourly"

    assert run_due_backup(runtime) is not None
    [row] = scheduled_rows(runtime.engine)
    assert row["status"] == "failed" and row["error"] and row["verified_at"] is None

    clock.advance(dt.timedelta(minutes=59))  # next hour, but the failure is under an hour old
    assert run_due_backup(runtime) is None
    clock.advance(dt.timedelta(minutes=1))
    runtime.settings.backup_dir = tmp_path / "backups"
    assert run_due_backup(runtime) is not None
    assert [r["status"] for r in scheduled_rows(runtime.engine)] == ["failed", "verified"]


def test_worker_once_runs_a_due_backup(
    runtime: Runtime, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(runtime.engine)
    monkeypatch.setenv("HERALD_BACKUP_SCHEDULE", "weekly")
    result = cli("worker", "--once")
    assert result.exit_code == 0, result.output
    [row] = scheduled_rows(runtime.engine)
    assert row["status"] == "verified" and Path(row["path"]).exists()
    assert Path(row["path"]).parent == runtime.settings.resolved_backup_dir.resolve()
    assert cli("worker", "--once").exit_code == 0
    assert len(scheduled_rows(runtime.engine)) == 1  # not due again this week


# --- API ------------------------------------------------------------------------------------------


def test_api_lists_and_takes_backups(runtime: Runtime, cli_env: dict[str, str]) -> None:
    seed(runtime.engine)
    secret = cli("apikey", "create", "--name", "backups").output.strip().splitlines()[-1]
    client = TestClient(create_app(runtime))
    auth = {"Authorization": f"Bearer {secret}"}

    assert client.post("/api/backups").status_code == 401
    assert client.get("/api/backups", headers=auth).json() == {"backups": [], "last_verified": None}

    made = client.post("/api/backups", headers=auth)
    assert made.status_code == 201
    body = made.json()
    assert body["status"] == "verified" and body["kind"] == "manual"
    assert body["table_counts"]["people"] == 3 and body["table_counts"]["api_keys"] == 2
    assert Path(body["path"]).parent == runtime.settings.resolved_backup_dir.resolve()
    assert Path(body["path"]).stat().st_size == body["size_bytes"]

    with runtime.engine.begin() as conn:  # an older failed backup, to see the verification state
        conn.execute(
            backups.insert().values(
                path="/gone.zip", kind="scheduled", status="failed", table_counts={}, error="disk full",
                created_at=T0 + dt.timedelta(seconds=1),
            )
        )  # fmt: skip
    listed = client.get("/api/backups", headers=auth).json()
    assert [b["status"] for b in listed["backups"]] == ["failed", "verified"]
    assert listed["last_verified"]["id"] == body["id"]
    assert client.get("/api/backups?limit=1", headers=auth).json()["backups"][0]["error"] == "disk full"
