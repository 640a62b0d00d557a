"""The real `herald` executable backs up and restores, with progress bars on, on both engines."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from herald.db.engine import create_db_engine
from tests.conftest import empty_database_url
from tests.integration.test_backup import dump, seed

HERALD = Path(sys.executable).parent / "herald"


@pytest.fixture
def empty_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    yield from empty_database_url(db_kind, tmp_path)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HERALD), *args], env=env, capture_output=True, text=True, timeout=300)


def test_backup_and_restore_as_processes(
    engine: sa.Engine, cli_env: dict[str, str], empty_url: str, tmp_path: Path
) -> None:
    seed(engine)
    env = {k: v for k, v in os.environ.items() if k != "CI"} | cli_env
    del env["CI"]  # progress bars on, as for a person at a terminal
    env["TTY_COMPATIBLE"] = "1"
    file = tmp_path / "b.zip"

    made = run(env, "backup", "--out", str(file))
    assert made.returncode == 0, made.stderr
    assert "verified" in made.stdout and "people" in made.stdout

    checked = run(env, "verify-backup", str(file))
    assert checked.returncode == 0, checked.stderr
    assert "instance_secrets" in checked.stdout

    restored = run(env | {"HERALD_DATABASE_URL": empty_url}, "restore", str(file))
    assert restored.returncode == 0, restored.stderr
    target = create_db_engine(empty_url)
    try:
        source, restored = dump(engine), dump(target)
        # Each side has its own last audit entry: the backup taken (after its snapshot), and the restore.
        assert [a["action"] for a in source.pop("audit_log")] == ["backup.created"]
        assert [a["action"] for a in restored.pop("audit_log")] == ["backup.restored"]
        assert restored == {**source, "backups": []}
    finally:
        target.dispose()

    again = run(env | {"HERALD_DATABASE_URL": empty_url}, "restore", str(file))
    assert again.returncode == 1
    assert "empty database" in again.stderr
