"""Hostile input through the real app on SQLite and PostgreSQL: huge bodies, huge integers, NUL, full disk."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.api.app import create_app
from herald.db.contacts_tables import people
from herald.db.runtime import Runtime

HUGE = [2**63, -(2**63) - 1, 10**30]


def count_people(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(people)) or 0)


@pytest.fixture
def small_limits(runtime: Runtime, api_key: str) -> Iterator[TestClient]:
    """The real app with a 4 KiB body limit and a 64 KiB upload limit."""
    runtime.settings.max_body_bytes = 4096
    runtime.settings.max_upload_bytes = 65536
    with TestClient(create_app(runtime), headers={"Authorization": f"Bearer {api_key}"}) as client:
        yield client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


# --- body size ---------------------------------------------------------------------------------


def test_bodies_over_the_limit_get_413_in_the_shape_and_store_nothing(
    small_limits: TestClient, runtime: Runtime
) -> None:
    big = {"emails": ["big@example.com"], "attributes": {"note": "x" * 5000}}
    error = assert_error(small_limits.post("/api/contacts", json=big), 413, "payload_too_large")
    assert "4096" in error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is counted as it streams
        body = json.dumps(big).encode()
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    chunked = small_limits.post("/api/contacts", content=chunks(), headers={"Content-Type": "application/json"})
    assert_error(chunked, 413, "payload_too_large")
    # Refused before routing or authentication: unknown paths and missing keys get the same answer.
    assert_error(small_limits.post("/api/nowhere", json=big), 413, "payload_too_large")
    assert count_people(runtime.engine) == 0
    ok = small_limits.post("/api/contacts", json={"emails": ["small@example.com"], "attributes": {"n": "x" * 3000}})
    assert ok.status_code == 201 and count_people(runtime.engine) == 1


def test_uploads_have_their_own_larger_limit(small_limits: TestClient) -> None:
    rows = "email\n" + "".join(f"user{i}@example.com\n" for i in range(1000))  # about 22 KB
    accepted = small_limits.post("/api/imports", files={"file": ("people.csv", rows.encode(), "text/csv")})
    assert accepted.status_code == 202, accepted.text
    too_big = ("email\n" + "x" * 70000).encode()
    refused = small_limits.post("/api/imports", files={"file": ("big.csv", too_big, "text/csv")})
    assert_error(refused, 413, "payload_too_large")
    # The larger limit belongs to the upload route only.
    assert_error(small_limits.post("/api/templates", content=rows.encode()), 413, "payload_too_large")


def test_a_web_page_over_the_limit_gets_the_error_page(small_limits: TestClient) -> None:
    page = small_limits.post("/login", data={"email": "a@example.com", "password": "p" * 5000})
    assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
    assert "larger than the limit of 4096 bytes" in page.text and "<h1" in page.text


def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(runtime: Runtime, api_key: str) -> None:
    """Drive the ASGI app directly: it must stop reading after the limit, not drain a gigabyte."""
    runtime.settings.max_body_bytes = 10_000
    app = create_app(runtime)
    chunk = b"x" * 1000
    sent_chunks = 0
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_chunks
        sent_chunks += 1
        return {"type": "http.request", "body": chunk, "more_body": sent_chunks < 1_000_000}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/contacts",
        "raw_path": b"/api/contacts",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {api_key}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    asyncio.run(app(scope, receive, send))
    assert sent_chunks == 11  # 11 000 bytes is the first count over 10 000
    start = next(m for m in messages if m["type"] == "http.response.start")
    assert start["status"] == 413
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert json.loads(body)["error"]["code"] == "payload_too_large"


# --- integers outside 64 bits ------------------------------------------------------------------


@pytest.mark.parametrize("value", HUGE)
def test_integers_outside_64_bits_get_422_never_500(api: Any, runtime: Runtime, value: int) -> None:
    for path in [
        f"/api/contacts/{value}",
        f"/api/messages/{value}",
        f"/api/imports/{value}",
        f"/api/imports/{value}/rejects.csv",
    ]:
        assert_error(api.get(path), 422, "invalid_input")
    assert_error(api.post(f"/api/merges/{value}/undo"), 422, "invalid_input")
    assert_error(api.delete(f"/api/contacts/{value}"), 422, "invalid_input")
    assert_error(api.get("/api/contacts", params={"offset": value}), 422, "invalid_input")
    merge = api.post("/api/merges", json={"survivor_id": value, "merged_id": 1})
    assert assert_error(merge, 422, "invalid_input")["problems"][0]["field"] == "survivor_id"
    message = {"contact_id": value, "class": "transactional", "channels": ["sms"], "content": {"sms": {"body": "hi"}}}
    assert_error(api.post("/api/messages", json=message, headers={"Idempotency-Key": "k1"}), 422, "invalid_input")
    assert count_people(runtime.engine) == 0


def test_the_largest_64_bit_id_reaches_the_database_and_is_simply_not_found(api: Any) -> None:
    largest = 2**63 - 1
    assert_error(api.get(f"/api/contacts/{largest}"), 404, "not_found")
    assert_error(api.get(f"/api/messages/{largest}"), 404, "not_found")
    assert_error(api.post(f"/api/imports/{largest}/undo"), 404, "not_found")
    listed = api.get("/api/contacts", params={"offset": largest})
    assert listed.status_code == 200 and listed.json()["contacts"] == []


# --- NUL ---------------------------------------------------------------------------------------


def test_text_with_nul_gets_422_everywhere_and_stores_nothing(api: Any, runtime: Runtime) -> None:
    nul = "a\x00b"
    for body in [
        {"emails": ["x@example.com"], "first_name": nul},
        {"emails": [f"{nul}@example.com"]},
        {"emails": ["x@example.com"], "attributes": {nul: "value"}},
        {"emails": ["x@example.com"], "attributes": {"key": nul}},
    ]:
        assert_error(api.post("/api/contacts", json=body), 422, "invalid_input")
    assert_error(api.get("/api/contacts", params={"q": nul}), 422, "invalid_input")
    assert_error(api.get("/api/templates/a%00b"), 422, "invalid_input")
    template = {"id": "welcome", "parts": {"sms.body": f"Hi {nul}"}}
    assert_error(api.post("/api/templates", json=template), 422, "invalid_input")
    message = {
        "email": "x@example.com",
        "class": "transactional",
        "channels": ["webhook"],
        "content": {"webhook": {"url": "https://example.com/h", "payload": {"deep": [{"er": nul}]}}},
    }
    error = assert_error(
        api.post("/api/messages", json=message, headers={"Idempotency-Key": "k"}), 422, "invalid_input"
    )
    assert "content.webhook.payload.deep[0].er" in error["problems"][0]["message"]
    # httpx would percent-encode a NUL in a file name; a hostile client sends the raw byte.
    raw = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a\x00b.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\nemail\nx@example.com\n\r\n--B--\r\n"
    )
    upload = api.post("/api/imports", content=raw, headers={"Content-Type": "multipart/form-data; boundary=B"})
    assert assert_error(upload, 422, "invalid_input")["fields"]["field"] == "file"
    fmt = api.post("/api/imports", files={"file": ("a.csv", b"email\n")}, data={"format": nul})
    assert_error(fmt, 422, "invalid_input")
    assert count_people(runtime.engine) == 0
    assert api.get("/api/templates/welcome").status_code == 404


# --- disk full ---------------------------------------------------------------------------------


def cap_pages(dbapi_conn: Any, *_: Any) -> None:
    """SQLite's own limit on the file size, set to what it is now: every new page is SQLITE_FULL."""
    pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
    dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")


def fill_storage(runtime: Runtime, db_kind: str) -> None:
    """Make the database refuse to grow, honestly: SQLite hits SQLITE_FULL, PostgreSQL raises 53100."""
    if db_kind == "sqlite":
        path = runtime.engine.url.database
        assert path
        runtime.engine.dispose()
        with sqlite3.connect(path) as raw:
            raw.execute("VACUUM")  # no free pages left to reuse: the next write must grow the file

        # On every checkout, not only on connect: a connection a background thread (the app's worker,
        # its heartbeat) opened before the cap was set would otherwise write without it.
        sa.event.listen(runtime.engine, "checkout", cap_pages)
        return
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION herald_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER herald_test_disk_full BEFORE INSERT ON people "
            "FOR EACH ROW EXECUTE FUNCTION herald_test_disk_full()"
        )


def free_storage(runtime: Runtime, db_kind: str) -> None:
    if db_kind == "sqlite":
        sa.event.remove(runtime.engine, "checkout", cap_pages)
        runtime.engine.dispose()
        return
    with runtime.engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER herald_test_disk_full ON people")
        conn.exec_driver_sql("DROP FUNCTION herald_test_disk_full()")


def test_a_full_disk_answers_503_with_retry_after_and_loses_nothing(api: Any, runtime: Runtime, db_kind: str) -> None:
    # Large enough to need new pages on SQLite (about 50 overflow pages).
    contact = {"emails": ["full@example.com"], "attributes": {"note": "n" * 200_000}}
    fill_storage(runtime, db_kind)
    refused = api.post("/api/contacts", json=contact)
    error = assert_error(refused, 503, "storage_unavailable")
    assert int(refused.headers["Retry-After"]) > 0 and error["fields"]["retry_after"] > 0
    # Reads still work, and nothing half-written is visible.
    assert api.get("/api/contacts").json()["total"] == 0
    free_storage(runtime, db_kind)
    stored = api.post("/api/contacts", json=contact)
    assert stored.status_code == 201, stored.text
    assert count_people(runtime.engine) == 1


def test_huge_numbers_inside_free_form_json_are_stored_as_given(api: Any) -> None:
    """Numbers in `payload` and `variables` are data, not ids: they must not break either engine."""
    message = {
        "email": "numbers@example.com",
        "class": "transactional",
        "channels": ["email"],
        "content": {"email": {"subject": "Numbers", "text": "{{ n }}"}},
        "variables": {"n": 10**30, "neg": -(2**63) - 1},
    }
    response = api.post("/api/messages", json=message, headers={"Idempotency-Key": "huge-numbers"})
    assert response.status_code == 202, response.text
    detail = api.get(f"/api/messages/{response.json()['id']}")
    assert detail.status_code == 200, detail.text
