"""Contacts and imports through the HTTP API on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from herald.db.contacts_tables import people

ROWS = "email,first name,phone\n" + "".join(
    f"user{i}@example.com,User{i},+1 212 736 {5000 + i:04d}\n" for i in range(250)
)


def poll_import(api: Any, batch_id: int) -> list[dict[str, Any]]:
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = api.get(f"/api/imports/{batch_id}").json()
        seen.append(body)
        if body["status"] in ("done", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"import {batch_id} did not finish: {seen[-1]}")


def test_upload_returns_a_batch_at_once_and_reports_progress(api: Any) -> None:
    bad = ROWS + "broken-email,Bad,\n"
    response = api.post("/api/imports", files={"file": ("people.csv", bad.encode(), "text/csv")})
    assert response.status_code == 202, response.text
    batch = response.json()["id"]
    states = poll_import(api, batch)
    final = states[-1]
    assert final["status"] == "done" and final["percent"] == 100
    assert final["counts"]["created"] == 250 and final["counts"]["rejected"] == 1
    assert final["processed_rows"] == 251
    rejects = api.get(f"/api/imports/{batch}/rejects.csv").text.splitlines()
    assert rejects[0] == "row,kind,reason,field,message"
    assert rejects[1].startswith("252,reject,invalid_email,email,")

    listed = api.get("/api/contacts", params={"q": "user17@", "limit": 5}).json()
    assert listed["total"] == 1 and listed["contacts"][0]["first_name"] == "User17"
    assert api.post(f"/api/imports/{batch}/undo").status_code == 200
    assert api.get("/api/contacts").json()["total"] == 0


def test_upload_validates_its_input(api: Any) -> None:
    wrong = api.post("/api/imports", files={"file": ("x.csv", b"a,b\n1,2\n")}, data={"format": "excel"})
    assert wrong.status_code == 422 and wrong.json()["error"]["fields"]["field"] == "format"
    missing = api.post("/api/imports")
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "invalid_input"
    assert api.get("/api/imports/999").json()["error"]["code"] == "not_found"


def test_contact_upsert_resolves_identity_and_households(api: Any, engine: sa.Engine) -> None:
    first = api.post(
        "/api/contacts", json={"emails": ["Kim.Lee@Gmail.com"], "first_name": "Kim", "phones": ["212-736-5000"]}
    )
    assert first.status_code == 201 and first.json()["action"] == "created"
    kim = first.json()["id"]
    same = api.post("/api/contacts", json={"emails": ["kimlee+shop@googlemail.com"], "company": "Acme"})
    assert same.json() == {"id": kim, "action": "updated"}
    sibling = api.post(
        "/api/contacts", json={"phones": ["(212) 736-5000"], "first_name": "Sam", "emails": ["sam@x.io"]}
    )
    assert sibling.json()["action"] == "created" and sibling.json()["id"] != kim
    detail = api.get(f"/api/contacts/{kim}").json()
    assert {i["key"] for i in detail["identifiers"]} == {"kimlee@gmail.com", "+12127365000"}
    assert detail["company"] == "Acme"

    bad = api.post("/api/contacts", json={"emails": ["nope"]})
    assert bad.status_code == 422 and bad.json()["error"]["fields"]["reason"] == "invalid_email"
    empty = api.post("/api/contacts", json={"first_name": "Nobody"})
    assert empty.status_code == 422
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(people)) == 2


def test_consent_opt_out_sticks_until_explicit(api: Any) -> None:
    pid = api.post("/api/contacts", json={"emails": ["opt@x.io"], "consent": {"email": "subscribed"}}).json()["id"]
    assert api.get(f"/api/contacts/{pid}").json()["consent"]["email:marketing"]["allowed"] is True
    out = api.post(f"/api/contacts/{pid}/consent", json={"channel": "email", "kind": "unsubscribed"})
    assert out.json()["email:marketing"]["allowed"] is False
    api.post("/api/contacts", json={"emails": ["opt@x.io"], "consent": {"email": "subscribed"}})
    assert api.get(f"/api/contacts/{pid}").json()["consent"]["email:marketing"]["state"] == "unsubscribed"
    back = api.post(f"/api/contacts/{pid}/consent", json={"channel": "email", "kind": "subscribed", "explicit": True})
    assert back.json()["email:marketing"]["allowed"] is True
    assert api.post(f"/api/contacts/{pid}/consent", json={"channel": "fax", "kind": "subscribed"}).status_code == 422


def test_merge_unmerge_and_opt_out_wins(api: Any) -> None:
    a = api.post(
        "/api/contacts", json={"emails": ["a@x.io"], "first_name": "Al", "consent": {"email": "subscribed"}}
    ).json()["id"]
    b = api.post("/api/contacts", json={"emails": ["b@x.io"], "first_name": "Albert"}).json()["id"]
    api.post(f"/api/contacts/{b}/consent", json={"channel": "email", "kind": "unsubscribed"})
    merged = api.post("/api/merges", json={"survivor_id": a, "merged_id": b, "reason": "same human"})
    assert merged.status_code == 201
    detail = api.get(f"/api/contacts/{a}").json()
    assert detail["consent"]["email:marketing"]["state"] == "unsubscribed"  # opt-out wins on merge
    assert any(item["kind"] == "merged" for item in detail["timeline"])
    assert api.get(f"/api/contacts/{b}").json()["status"] == "merged"
    undone = api.post(f"/api/merges/{merged.json()['id']}/undo")
    assert undone.json() == {"survivor_id": a, "restored_id": b}
    assert api.get(f"/api/contacts/{a}").json()["consent"]["email:marketing"]["state"] == "subscribed"
    assert api.get(f"/api/contacts/{b}").json()["first_name"] == "Albert"
    assert api.post(f"/api/merges/{merged.json()['id']}/undo").status_code == 409


def test_export_download_is_neutralised(api: Any) -> None:
    api.post("/api/contacts", json={"emails": ["f@x.io"], "first_name": "=1+2", "tags": ["@vip"]})
    body = api.get("/api/exports/contacts.csv").text
    assert "'=1+2" in body
    assert body.splitlines()[0].startswith("herald_person_id,")


def test_locked_fields_survive_imports_and_merges(api: Any, clock: Any) -> None:
    import datetime as dt

    a = api.post("/api/contacts", json={"emails": ["lock@x.io"], "first_name": "Robert", "company": "Old"}).json()["id"]
    assert api.post(f"/api/contacts/{a}/locks", json={"fields": ["first_name"]}).json()["locked_fields"] == [
        "first_name"
    ]
    assert api.post(f"/api/contacts/{a}/locks", json={"fields": ["password"]}).status_code == 422
    clock.advance(dt.timedelta(minutes=1))
    api.post("/api/contacts", json={"emails": ["lock@x.io"], "first_name": "Bob", "company": "New"})
    detail = api.get(f"/api/contacts/{a}").json()
    assert (detail["first_name"], detail["company"]) == ("Robert", "New")  # locked stays, the rest: newest wins
    clock.advance(dt.timedelta(minutes=1))
    b = api.post("/api/contacts", json={"emails": ["other@x.io"], "first_name": "Bobby", "company": "Newest"}).json()[
        "id"
    ]
    api.post("/api/merges", json={"survivor_id": a, "merged_id": b})
    merged = api.get(f"/api/contacts/{a}").json()
    assert (merged["first_name"], merged["company"]) == ("Robert", "Newest")


def test_invalid_values_beside_a_valid_one_are_warnings_not_lost_people(api: Any, engine: sa.Engine) -> None:
    crm = (
        "Email,Phone,Twitter,First Name\n"
        "omar.x@gmail.com,n/a,,Omar\n"
        "ida@example.com,12345,@ida,Ida\n"
        "omar..x@gmail.com,+1 212 736 5000,,Omar\n"  # the phone is good; the e-mail is not
        "lee@example.com,(212) 155-0101,not a handle!,Lee\n"  # an unallocated range; a bad handle
        "omar..y@gmail.com,n/a,,Nobody\n"  # nothing valid at all: the only rejected row
    )
    response = api.post("/api/imports", files={"file": ("crm.csv", crm.encode(), "text/csv")})
    final = poll_import(api, response.json()["id"])[-1]
    assert final["status"] == "done", final
    assert final["counts"]["created"] == 4 and final["counts"]["rejected"] == 1 and final["counts"]["warned"] == 4
    assert final["processed_rows"] == final["total_rows"] == 5  # rows, however many warnings each has
    warnings = [(w["row"], w["reason"], w["field"]) for w in final["warnings"]]
    assert warnings == [
        (2, "invalid_phone", "phone"),
        (3, "invalid_phone", "phone"),
        (4, "invalid_email", "email"),
        (5, "invalid_phone", "phone"),
        (5, "invalid_handle", "handle"),
    ]
    assert "imported without it" in final["warnings"][0]["message"]
    assert [(r["row"], r["reason"]) for r in final["rejects"]] == [(6, "invalid_email")]
    assert "'n/a' is not a phone number" in final["rejects"][0]["message"]  # every bad value is named
    lines = api.get(final["rejects_url"]).text.splitlines()
    assert [line.split(",")[:3] for line in lines[1:]] == [
        ["2", "warning", "invalid_phone"],
        ["3", "warning", "invalid_phone"],
        ["4", "warning", "invalid_email"],
        ["5", "warning", "invalid_phone"],
        ["5", "warning", "invalid_handle"],
        ["6", "reject", "invalid_email"],
    ]
    listed = api.get("/api/contacts", params={"limit": 10}).json()
    assert listed["total"] == 4
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(people)) == 4
