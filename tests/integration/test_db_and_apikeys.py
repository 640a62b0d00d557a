"""Migrations on both engines, the un-migrated gate, API-key authentication and the error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.db import migrate
from herald.db.engine import create_db_engine
from herald.db.runtime import Runtime
from tests.conftest import empty_database_url
from tests.helpers import cli


@pytest.fixture
def empty_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    yield from empty_database_url(db_kind, tmp_path)


def test_upgrade_and_downgrade_on_an_empty_database(empty_url: str) -> None:
    engine = create_db_engine(empty_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision(engine)
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    engine.dispose()


def test_commands_refuse_an_unmigrated_database(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", empty_url)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path / "d"))
    result = cli("serve", "--no-worker")
    assert result.exit_code == 1
    assert "herald db upgrade" in result.output
    assert cli("db", "upgrade").exit_code == 0
    head = migrate.head_revision(create_db_engine(empty_url))
    assert f"current: {head}  head: {head}" in cli("db", "current").output


def test_api_requires_a_valid_key(runtime: Runtime, cli_env: dict[str, str]) -> None:
    client = TestClient(create_app(runtime))
    missing = client.get("/api/backups")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = client.get("/api/backups", headers={"Authorization": "Bearer hk_nope"})
    assert wrong.status_code == 401 and set(wrong.json()["error"]) >= {"code", "message"}

    created = cli("apikey", "create", "--name", "tests")
    assert created.exit_code == 0
    secret = created.output.strip().splitlines()[-1]
    assert secret.startswith("hk_")
    ok = client.get("/api/backups", headers={"Authorization": f"Bearer {secret}"})
    assert ok.status_code != 401

    key_id = cli("apikey", "list").stdout.split()[0]
    assert cli("apikey", "revoke", key_id).exit_code == 0
    assert client.get("/api/backups", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_openapi_is_served(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Herald"
    assert client.get("/docs").status_code == 200
