"""Stored templates through the API and the CLI, on SQLite and PostgreSQL: list with the latest version,
preview for a person (stored version, older version, unsaved draft), holds with every missing variable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import cli

WELCOME = {
    "email.subject": "Welcome, {{ first_name }}",
    "email.text": "Hello {{ contact.first_name }}, your plan is {{ plan }}.",
    "sms.body": "Hi {{ first_name }}!",
}


def _contact(api: TestClient, **fields: Any) -> int:
    response = api.post("/api/contacts", json=fields)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _save(api: TestClient, template_id: str, parts: dict[str, str], variables: dict[str, Any] | None = None) -> int:
    response = api.post("/api/templates", json={"id": template_id, "parts": parts, "variables": variables or {}})
    assert response.status_code == 201, response.text
    return int(response.json()["version"])


def test_list_shows_each_template_once_with_its_latest_version(api: TestClient) -> None:
    assert api.get("/api/templates").json() == {"templates": []}
    assert _save(api, "welcome", WELCOME) == 1
    assert _save(api, "welcome", {**WELCOME, "sms.body": "Hey {{ first_name }}!"}, {"plan": "free"}) == 2
    assert _save(api, "alert", {"sms.body": "Service notice"}) == 1
    listed = api.get("/api/templates").json()["templates"]
    assert [(t["id"], t["latest_version"], t["versions"]) for t in listed] == [("alert", 1, 1), ("welcome", 2, 2)]
    assert listed[1]["parts"]["sms.body"] == "Hey {{ first_name }}!" and listed[1]["variables"] == {"plan": "free"}
    # Saving is audited as the API key that did it.
    audit = api.get("/api/templates/welcome").json()["versions"]
    assert [v["version"] for v in audit] == [1, 2]


def test_preview_renders_for_a_person_or_says_what_is_missing(api: TestClient) -> None:
    ann = _contact(api, emails=["ann@example.com"], first_name="Ann", attributes={"plan": "gold"})
    bob = _contact(api, emails=["bob@example.com"])  # no first name, no plan
    _save(api, "welcome", WELCOME)

    shown = api.post("/api/templates/welcome/preview", json={"person_id": ann})
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["status"] == "rendered" and body["version"] == 1 and body["hold_reason"] is None
    assert body["parts"] == {
        "email.subject": "Welcome, Ann",
        "email.text": "Hello Ann, your plan is gold.",
        "sms.body": "Hi Ann!",
    }
    states = {v["path"]: v["state"] for v in body["variables"]}
    assert states == {"first_name": "present", "contact.first_name": "present", "plan": "present"}

    held = api.post("/api/templates/welcome/preview", json={"person_id": bob}).json()
    assert held["status"] == "held" and held["parts"] == {}
    assert held["hold_reason"] == "missing_variable:contact.first_name"
    assert held["missing_variables"] == ["contact.first_name", "first_name", "plan"]
    assert "first_name" in held["hold_reason_text"]

    # A second version with fallbacks: Bob now gets them, and version 1 can still be previewed.
    _save(api, "welcome", WELCOME, {"first_name": "friend", "contact.first_name": "friend", "plan": "basic"})
    v2 = api.post("/api/templates/welcome/preview", json={"person_id": bob}).json()
    assert v2["status"] == "rendered" and v2["version"] == 2
    assert v2["parts"]["email.text"] == "Hello friend, your plan is basic."
    assert v2["fallbacks_used"] == ["contact.first_name", "first_name", "plan"]
    assert api.post("/api/templates/welcome/preview", json={"person_id": bob, "version": 1}).json()["status"] == "held"


def test_preview_of_an_unsaved_draft_stores_nothing(api: TestClient) -> None:
    ann = _contact(api, emails=["ann@example.com"], first_name="Ann")
    draft = {"person_id": ann, "parts": {"sms.body": "Hi {{ first_name }}, code {{ code }}"}}
    # A template not saved yet can be previewed from its draft.
    held = api.post("/api/templates/fresh/preview", json=draft).json()
    assert held["status"] == "held" and held["version"] is None and held["missing_variables"] == ["code"]
    rendered = api.post("/api/templates/fresh/preview", json={**draft, "variables": {"code": "0000"}}).json()
    assert rendered["parts"] == {"sms.body": "Hi Ann, code 0000"} and rendered["fallbacks_used"] == ["code"]
    assert api.get("/api/templates").json() == {"templates": []}

    broken = api.post("/api/templates/fresh/preview", json={**draft, "parts": {"sms.body": "{{ oops"}})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "template_invalid"
    unsafe = api.post("/api/templates/fresh/preview", json={**draft, "parts": {"sms.body": "{{ ''.__class__ }}"}})
    assert unsafe.status_code == 422 and unsafe.json()["error"]["code"] == "template_unsafe"
    bad_part = api.post("/api/templates/fresh/preview", json={**draft, "parts": {"fax.body": "x"}})
    assert bad_part.status_code == 422


def test_preview_of_unknown_things_is_404(api: TestClient) -> None:
    ann = _contact(api, emails=["ann@example.com"], first_name="Ann")
    _save(api, "welcome", WELCOME)
    for body, path in (
        ({"person_id": ann}, "/api/templates/nope/preview"),
        ({"person_id": ann, "version": 9}, "/api/templates/welcome/preview"),
        ({"person_id": 999_999}, "/api/templates/welcome/preview"),
    ):
        response = api.post(path, json=body)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", (path, body)


def test_cli_create_list_show_and_preview(api: TestClient, cli_env: dict[str, str], tmp_path: Path) -> None:
    ann = _contact(api, emails=["ann@example.com"], first_name="Ann")
    bob = _contact(api, emails=["bob@example.com"])
    body = tmp_path / "body.txt"
    body.write_text("Hello {{ first_name }},\nwelcome aboard.\n", encoding="utf-8")

    created = cli("templates", "create", "welcome", "--part", "email.subject=Welcome", "--part", f"email.text=@{body}")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout) == {"id": "welcome", "version": 1}
    again = cli(
        "templates", "create", "welcome", "--part", "email.subject=Welcome", "--part", f"email.text=@{body}",
        "--fallback", "first_name=there",
    )  # fmt: skip
    assert json.loads(again.stdout)["version"] == 2

    listed = cli("templates", "list", "--json")
    assert [(t["id"], t["latest_version"]) for t in json.loads(listed.stdout)] == [("welcome", 2)]
    table = cli("templates", "list")
    assert "welcome" in table.stdout and "v2" in table.stdout and "first_name=there" in table.stdout

    shown = json.loads(cli("templates", "show", "welcome", "--version", "1").stdout)
    assert shown["versions"][0]["parts"]["email.text"] == body.read_text(encoding="utf-8")

    ok = cli("templates", "preview", "welcome", "--person", str(ann))
    assert ok.exit_code == 0 and json.loads(ok.stdout)["parts"]["email.text"].startswith("Hello Ann,")
    fallback = json.loads(cli("templates", "preview", "welcome", "--person", str(bob)).stdout)
    assert fallback["parts"]["email.text"].startswith("Hello there,") and fallback["fallbacks_used"] == ["first_name"]
    held = cli("templates", "preview", "welcome", "--person", str(bob), "--version", "1")
    assert held.exit_code == 3 and json.loads(held.stdout)["missing_variables"] == ["first_name"]

    broken = cli("templates", "create", "bad", "--part", "email.subject={{ oops")
    assert broken.exit_code == 1 and "template_invalid" in broken.stderr
    missing_file = cli("templates", "create", "bad", "--part", f"email.text=@{tmp_path / 'none.txt'}")
    assert missing_file.exit_code == 2
    unknown = cli("templates", "preview", "nope", "--person", str(ann))
    assert unknown.exit_code == 1 and "not_found" in unknown.stderr
