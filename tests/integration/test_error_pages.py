"""Web pages answer hostile URLs and forms with the styled error page and the right status, never JSON."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from herald.api.app import create_app
from herald.core.clock import FrozenClock
from herald.db.runtime import Runtime
from tests.integration.test_auth import PASSWORD, _csrf, make_admin, password_only_operator


@pytest.fixture
def marketer(runtime: Runtime, clock: FrozenClock) -> Iterator[TestClient]:
    """A TestClient signed in as a marketer (password only), with a 4 KiB body and 8 KiB upload limit."""
    runtime.settings.max_body_bytes = 4096
    runtime.settings.max_upload_bytes = 8192
    admin = make_admin(runtime.engine, clock)
    password_only_operator(
        runtime.engine, clock, admin, email="m@example.com", role="marketer", reason="shared kiosk for the test"
    )
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        token = _csrf(client.get("/login").text)
        signed_in = client.post("/login", data={"csrf_token": token, "email": "m@example.com", "password": PASSWORD})
        assert signed_in.status_code == 303, signed_in.text
        yield client


def assert_page(response: Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert '<section class="card auth-card" aria-labelledby="error-title">' in response.text
    assert "Content-Security-Policy" in response.headers


@pytest.mark.parametrize("value", ["99999999999999999999", str(2**63), str(-(2**63) - 1), "abc", "0"])
def test_page_urls_with_ids_that_cannot_exist_are_not_found(marketer: TestClient, value: str) -> None:
    for path in [f"/contacts/{value}", f"/imports/{value}", f"/imports/{value}/progress"]:
        assert_page(marketer.get(path), 404)


def test_hostile_query_and_form_values_get_the_error_page(marketer: TestClient) -> None:
    assert_page(marketer.get("/contacts", params={"q": "a\x00b"}), 422)
    assert_page(marketer.get("/data", params={"failed": str(10**30)}), 422)
    token = _csrf(marketer.get("/duplicates").text)
    form = {"csrf_token": token, "survivor_id": str(2**63)}
    assert_page(marketer.post("/duplicates/1/merge", data=form), 422)
    assert_page(marketer.get("/contacts/12345"), 404)  # a well-formed id with no person
    assert_page(marketer.get("/no/such/page"), 404)


def test_web_uploads_over_their_limit_get_the_error_page(marketer: TestClient) -> None:
    token = _csrf(marketer.get("/imports").text)
    small = marketer.post(
        "/imports", data={"csrf_token": token}, files={"file": ("ok.csv", b"email\n" + b"a@example.com\n" * 400)}
    )
    assert small.status_code == 303, small.text  # over the 4 KiB body limit, under the upload limit
    big = marketer.post("/imports", data={"csrf_token": token}, files={"file": ("big.csv", b"x" * 9000)})
    assert_page(big, 413)
