"""Files that cannot be imported at all: a failed batch with its reason (API), a clear error (CLI)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from herald.db.contacts_tables import import_batches, people
from tests.helpers import cli

UNSTARTABLE = {
    "empty": (b"", "The file is empty."),
    "blank": (b"\r\n  \r\n", "The file is empty."),
    "binary": (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4, "a ZIP archive or Excel workbook"),
    "nul-bytes": (b"email,name\n\x00\x01\x02\x00ann@x.io\n", "not text"),
    "no-identifier-column": (b"name,city\nAnn,Oslo\n", "no e-mail, phone or social handle column"),
    # Our own export is strict UTF-8; a byte that is not UTF-8 in its header cannot be decoded.
    "undecodable": (b"herald_person_id,emails,first_name\xff\n1,[],Ann\n", "cannot be read as CSV text"),
}


def poll(api: Any, batch_id: int, seconds: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + seconds  # "within seconds": the batch must not sit in pending
    while time.monotonic() < deadline:
        body: dict[str, Any] = api.get(f"/api/imports/{batch_id}").json()
        if body["status"] not in ("pending", "running"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"import {batch_id} still {body['status']} after {seconds} s")


@pytest.mark.parametrize("case", UNSTARTABLE)
def test_an_upload_that_cannot_start_ends_failed_with_its_reason(api: Any, engine: sa.Engine, case: str) -> None:
    content, reason = UNSTARTABLE[case]
    response = api.post("/api/imports", files={"file": (f"{case}.csv", content, "text/csv")})
    assert response.status_code == 202, response.text
    body = poll(api, response.json()["id"])
    assert body["status"] == "failed" and body["finished_at"] is not None
    assert body["error"]["code"] == "invalid_input"
    assert reason in body["error"]["message"]
    assert body["counts"]["created"] == 0 and body["rejects"] == [] and body["warnings"] == []
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(people)) == 0


@pytest.mark.parametrize("case", ["empty", "binary", "no-identifier-column", "undecodable"])
def test_the_cli_says_why_a_file_cannot_be_imported(
    cli_env: dict[str, str], engine: sa.Engine, tmp_path: Path, case: str
) -> None:
    content, reason = UNSTARTABLE[case]
    path = tmp_path / f"{case}.csv"
    path.write_bytes(content)
    result = cli("contacts", "import", str(path))
    assert result.exit_code == 1
    assert "error (invalid_input):" in result.output and reason in result.output
    assert "Traceback" not in result.output
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(import_batches)) == 0  # nothing half-started


def test_an_import_that_fails_midway_reports_an_error_code_and_rolls_back(
    api: Any, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from herald.contacts import resolve

    def broken(self: object, records: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(resolve.Resolver, "resolve", broken)
    response = api.post("/api/imports", files={"file": ("ok.csv", b"email\nann@x.io\n", "text/csv")})
    body = poll(api, response.json()["id"])
    assert body["status"] == "failed"
    assert body["error"] == {"code": "import_failed", "message": "RuntimeError: disk on fire"}
