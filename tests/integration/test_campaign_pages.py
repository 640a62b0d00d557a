"""Campaign and template pages through the real app on SQLite and PostgreSQL: roles, the draft form's errors
beside their fields (never a 500), the controls behind CSRF and their notices, held reasons in words."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient

from herald.core.actor import SYSTEM
from herald.core.clock import FrozenClock
from herald.db.runtime import Runtime
from herald.segments.service import create_segment
from tests.helpers import in_unit, wait_for_job
from tests.integration.test_messages_pages import _csrf, sign_in

TEMPLATE = {"id": "autumn", "parts": {"email.subject": "Autumn", "email.text": "Hi {{ first_name }}."}}
LONDON = "Europe/London"


def _people(api: TestClient) -> None:
    for name, first in (("ann", "Ann"), ("bob", None), ("cat", "Cat")):
        body: dict[str, Any] = {"emails": [f"{name}@example.com"], "consent": {"email": "subscribed"}}
        body |= {"timezone": LONDON} | ({"first_name": first} if first else {})
        assert api.post("/api/contacts", json=body).status_code == 201


def _form(client: TestClient, path: str, **fields: Any) -> Any:
    token = _csrf(client.get(path).text)
    return client.post(path, data={"csrf_token": token, **fields})


def _draft(segment: int, **changes: Any) -> dict[str, Any]:
    return {
        "name": "Autumn news",
        "segment_id": str(segment),
        "template_id": "autumn",
        "template_version": "",
        "channel": ["email", ""],
        "message_class": "marketing",
        "schedule_kind": "now",
    } | changes


def test_only_admins_and_marketers_reach_campaigns_and_templates(runtime: Runtime, clock: FrozenClock) -> None:
    agent = sign_in(runtime, clock, "agent")
    for path in ("/campaigns", "/campaigns/new", "/templates", "/templates/-/new"):
        assert agent.get(path).status_code == 403, path
    marketer = sign_in(runtime, clock, "marketer")
    page = marketer.get("/campaigns")
    assert page.status_code == 200 and '<a href="/campaigns" aria-current="page">Campaigns</a>' in page.text
    assert "No campaigns yet" in page.text
    assert marketer.get("/campaigns/999").status_code == 404
    assert marketer.get("/templates/nope").status_code == 404


def test_draft_form_errors_show_beside_their_fields(api: TestClient, runtime: Runtime, clock: FrozenClock) -> None:
    assert api.post("/api/templates", json=TEMPLATE).status_code == 201
    segment = in_unit(runtime.engine, clock, SYSTEM, create_segment, "everyone", {"all": []})
    marketer = sign_in(runtime, clock, "marketer")
    cases = [
        ({"segment_id": ""}, "segment_id", "Choose the segment to send to."),
        ({"template_id": ""}, "template_id", "Choose a template."),
        ({"schedule_kind": "local_time", "date": "2026-12-24", "time": "25:99"}, "time", "HH:MM"),
        ({"schedule_kind": "at", "at": "soon"}, "at", "ISO 8601"),
        ({"send_rate": "fast"}, "send_rate", "whole number"),
        ({"channel": ["", ""]}, "channels", "channels"),
        ({"template_id": "missing"}, "", "missing"),
    ]
    for change, field, message in cases:
        response = _form(marketer, "/campaigns/new", **_draft(segment.id, **change))
        assert response.status_code == 422, (change, response.status_code)
        text = html.unescape(response.text)
        if field:
            assert f'id="f-{field}-error"' in text, (change, field)
        assert message in text, (change, message)
    # The typed values come back, so nothing has to be typed again.
    again = _form(marketer, "/campaigns/new", **_draft(segment.id, name="Kept name", send_rate="fast"))
    assert 'value="Kept name"' in again.text and 'value="fast"' in again.text
    assert marketer.get("/campaigns").text.count("<tr data-status=") == 0  # nothing was created


def test_launch_and_controls_need_csrf_and_say_what_they_did(
    api: TestClient, runtime: Runtime, clock: FrozenClock
) -> None:
    assert api.post("/api/templates", json=TEMPLATE).status_code == 201
    _people(api)
    segment = in_unit(runtime.engine, clock, SYSTEM, create_segment, "everyone", {"all": []})
    marketer = sign_in(runtime, clock, "marketer")
    created = _form(marketer, "/campaigns/new", **_draft(segment.id))
    assert created.status_code == 303, created.text
    url = created.headers["location"]
    cid = int(url.rsplit("/", 1)[1])

    draft = marketer.get(url).text
    assert "Coverage of autumn v1" in draft
    assert "first_name missing for 1 (33 %) → held" in html.unescape(draft)
    assert re.search(r'data-outcome="send"><dt>Sent</dt><dd>2</dd>', draft)
    assert re.search(r'data-outcome="hold"><dt>Held</dt><dd>1</dd>', draft)
    edit = marketer.get(f"/campaigns/{cid}/edit").text
    assert 'value="Autumn news"' in edit and "Coverage of autumn v1" in edit

    # No CSRF token, or a cross-site request: refused, nothing launched.
    assert marketer.post(f"/campaigns/{cid}/launch").status_code == 403
    token = _csrf(draft)
    cross = marketer.post(
        f"/campaigns/{cid}/launch", data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert api.get(f"/api/campaigns/{cid}").json()["status"] == "draft"

    launched = marketer.post(f"/campaigns/{cid}/launch", data={"csrf_token": token})
    assert launched.status_code == 303 and launched.headers["location"] == f"{url}?done=launched"
    wait_for_job(api, api.get(f"/api/campaigns/{cid}").json()["job_id"])
    running = marketer.get(url).text
    assert 'data-status="running"' in running and 'hx-trigger="every 1s"' in running
    assert 'data-action="pause"' in running and 'data-action="cancel"' in running
    assert 'data-reason="missing_variable"' in running
    assert "A template variable has no value and no fallback: first_name." in html.unescape(running)
    # htmx posts answer with HX-Redirect so the whole page moves (and its notice shows).
    paused = marketer.post(f"/campaigns/{cid}/pause", headers={"HX-Request": "true", "X-CSRF-Token": token})
    assert paused.status_code == 200 and paused.headers["HX-Redirect"] == f"{url}?done=pause&changed=2"
    page = marketer.get(paused.headers["HX-Redirect"]).text
    assert "Paused: 2 messages." in page and 'data-action="resume"' in page
    again = marketer.post(f"/campaigns/{cid}/pause", data={"csrf_token": token})
    assert "error=" in again.headers["location"]
    assert "paused" in html.unescape(marketer.get(again.headers["location"]).text).lower()
    cancelled = marketer.post(f"/campaigns/{cid}/cancel", data={"csrf_token": token})
    assert cancelled.headers["location"] == f"{url}?done=cancel&changed=3"
    final = marketer.get(cancelled.headers["location"]).text
    assert "Cancelled: 3 messages." in final and "every 1s" not in final and 'data-action="' not in final
    assert marketer.post(f"/campaigns/{cid}/explode", data={"csrf_token": token}).status_code == 404
    listed = marketer.get("/campaigns").text
    assert '<tr data-status="cancelled">' in listed and "everyone" in listed


def test_send_to_newcomers_from_the_page_plans_only_the_new_person(
    api: TestClient, runtime: Runtime, clock: FrozenClock
) -> None:
    assert api.post("/api/templates", json=TEMPLATE).status_code == 201
    _people(api)
    segment = in_unit(runtime.engine, clock, SYSTEM, create_segment, "everyone", {"all": []})
    marketer = sign_in(runtime, clock, "marketer")
    url = _form(marketer, "/campaigns/new", **_draft(segment.id)).headers["location"]
    cid = int(url.rsplit("/", 1)[1])
    token = _csrf(marketer.get(url).text)
    marketer.post(f"/campaigns/{cid}/launch", data={"csrf_token": token})
    wait_for_job(api, api.get(f"/api/campaigns/{cid}").json()["job_id"])
    assert "3 of 3 recipients planned" in marketer.get(url).text

    body = {"emails": ["dan@example.com"], "first_name": "Dan", "consent": {"email": "subscribed"}}
    assert api.post("/api/contacts", json=body | {"timezone": LONDON}).status_code == 201
    asked = marketer.post(f"/campaigns/{cid}/newcomers", data={"csrf_token": token})
    assert asked.headers["location"] == f"{url}?done=newcomers"
    assert "Planning newcomers." in marketer.get(asked.headers["location"]).text
    wait_for_job(api, api.get(f"/api/campaigns/{cid}").json()["job_id"])
    page = marketer.get(url).text
    assert "4 of 4 recipients planned" in page
    assert re.search(r'data-count="queued"><dt>Queued</dt><dd>3</dd>', page)  # Ann, Cat and now Dan; Bob held
    # Asking again adds nobody: each person still has one message.
    marketer.post(f"/campaigns/{cid}/newcomers", data={"csrf_token": token})
    wait_for_job(api, api.get(f"/api/campaigns/{cid}").json()["job_id"])
    assert "4 of 4 recipients planned" in marketer.get(url).text
