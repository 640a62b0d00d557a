"""Saved segments through the HTTP API and the CLI: CRUD, live count, preview, audit, bad definitions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.helpers import cli

VIP_FR = {"all": [{"type": "tag", "tag": "vip"}, {"type": "country", "in": ["FR"]}]}


def _people(api: Any) -> dict[str, int]:
    ids = {}
    for name, country, tags, zone in (
        ("ann", "FR", ["vip"], "Europe/Paris"),
        ("bea", "FR", [], None),
        ("cid", "DE", ["vip"], "Europe/Berlin"),
        ("dom", "FR", ["vip"], None),
    ):
        body = {"emails": [f"{name}@example.com"], "first_name": name.title(), "last_name": "Test", "country": country}
        body |= {"tags": tags} | ({"timezone": zone} if zone else {})
        response = api.post("/api/contacts", json=body)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    return ids


def test_segment_crud_count_and_preview(api: Any, engine: sa.Engine) -> None:
    ids = _people(api)
    assert api.post("/api/segments/count", json={"definition": VIP_FR}).json() == {"count": 2}
    assert api.post("/api/segments/count", json={"definition": {"all": []}}).json() == {"count": 4}

    created = api.post("/api/segments", json={"name": "VIP France", "definition": VIP_FR})
    assert created.status_code == 201, created.text
    segment = created.json()
    assert segment["name"] == "VIP France" and segment["definition"]["all"][1] == {"type": "country", "in": ["FR"]}
    sid = segment["id"]

    again = api.post("/api/segments", json={"name": "VIP France", "definition": {"all": []}})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    shown = api.get(f"/api/segments/{sid}").json()
    assert shown["count"] == 2 and shown["definition"] == segment["definition"]
    assert [s["name"] for s in api.get("/api/segments").json()["segments"]] == ["VIP France"]

    preview = api.get(f"/api/segments/{sid}/preview", params={"limit": 20}).json()["people"]
    assert [p["id"] for p in preview] == sorted([ids["ann"], ids["dom"]])
    assert preview[0] == {
        "id": ids["ann"],
        "first_name": "Ann",
        "last_name": "Test",
        "email": "ann@example.com",
        "country": "FR",
        "timezone": "Europe/Paris",
    }
    assert len(api.get(f"/api/segments/{sid}/preview", params={"limit": 1}).json()["people"]) == 1
    assert api.get(f"/api/segments/{sid}/preview", params={"limit": 0}).status_code == 422

    everyone_fr = {"type": "country", "in": ["FR"]}
    updated = api.put(f"/api/segments/{sid}", json={"name": "France", "definition": everyone_fr})
    assert updated.status_code == 200, updated.text
    assert api.get(f"/api/segments/{sid}").json()["count"] == 3
    assert api.get(f"/api/segments/{sid}").json()["name"] == "France"

    assert api.delete(f"/api/segments/{sid}").status_code == 200
    gone = api.get(f"/api/segments/{sid}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert api.put(f"/api/segments/{sid}", json={"name": "x"}).status_code == 404

    with engine.connect() as conn:
        actions = list(conn.scalars(sa.text("SELECT action FROM audit_log WHERE action LIKE 'segment.%' ORDER BY id")))
    assert actions == ["segment.created", "segment.updated", "segment.deleted"]


def test_bad_definitions_answer_422_with_the_path(api: Any) -> None:
    bad = {"all": [{"type": "tag", "tag": "vip"}, {"any": [{"type": "country", "in": ["France"]}]}]}
    for response in (
        api.post("/api/segments/count", json={"definition": bad}),
        api.post("/api/segments", json={"name": "bad", "definition": bad}),
    ):
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert "definition.all[1].any[0].in[0]" in error["message"]
    deep: dict[str, Any] = {"type": "tag", "tag": "x"}
    for _ in range(50):
        deep = {"not": deep}
    response = api.post("/api/segments/count", json={"definition": deep})
    assert response.status_code == 422 and "nest at most" in response.json()["error"]["message"]
    for body in ({"definition": []}, {"definition": "x"}, {}, {"definition": {"type": "attribute", "name": "\x00"}}):
        assert api.post("/api/segments/count", json=body).status_code == 422, body
    assert api.get("/api/segments/99999999999999999999").status_code == 422
    assert api.post("/api/segments", json={"name": "", "definition": {"all": []}}).status_code == 422


def test_cli_round_trip(api: Any, cli_env: dict[str, str], tmp_path: Path) -> None:
    _people(api)
    path = tmp_path / "vip.json"
    path.write_text(json.dumps(VIP_FR), encoding="utf-8")
    created = cli("segments", "create", "VIP France", "--definition", f"@{path}")
    assert created.exit_code == 0, created.stdout
    assert "2 people" in created.stdout
    sid = api.get("/api/segments").json()["segments"][0]["id"]

    listed = cli("segments", "list")
    assert "VIP France" in listed.stdout and listed.exit_code == 0
    shown = cli("segments", "show", str(sid))
    assert json.loads(shown.stdout)["count"] == 2
    assert cli("segments", "count", str(sid)).stdout.strip() == "2"
    inline = cli("segments", "count", "--definition", json.dumps({"type": "country", "in": ["DE"]}))
    assert inline.stdout.strip() == "1"
    preview = cli("segments", "preview", str(sid))
    assert "ann@example.com" in preview.stdout and "dom@example.com" in preview.stdout
    assert "bea@example.com" not in preview.stdout

    bad = cli("segments", "count", "--definition", '{"all": [{"type": "tag"}]}')
    assert bad.exit_code == 1 and "definition.all[0].tag" in bad.stderr
    assert cli("segments", "count").exit_code == 1
    assert cli("segments", "create", "x", "--definition", "{not json").exit_code == 1
    assert cli("segments", "show", "424242").exit_code == 1
