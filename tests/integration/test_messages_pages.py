"""The Messages pages through the real app on SQLite and PostgreSQL: sign-in and roles, filters applied,
paging, bad filters answered with a page (never a 500), the message page, the person's timeline, and hostile
content that stays inert."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from herald.api.app import create_app
from herald.auth import users
from herald.core.clock import FrozenClock
from herald.db.runtime import Runtime
from tests.helpers import in_unit
from tests.integration.test_messages_list import _contact, _send, seed

PASSWORD = "violet-tundra-47-ladder"
XSS_SUBJECT = "<script>alert('subject')</script>"
XSS_TEXT = '"><img src=x onerror=alert(1)>'
XSS_HTML = "<script>alert('html')</script><p onclick=\"alert(2)\">Hello <b>there</b></p>"


def escape_(value: str) -> str:
    """As the templates escape (Jinja's markupsafe), to look for a value as it appears in a page."""
    return str(escape(value))


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match is not None
    return match.group(1)


def sign_in(runtime: Runtime, clock: FrozenClock, role: str) -> TestClient:
    """A browser-like client signed in through the login form as an operator of this role."""
    if not users.any_users(runtime.engine):
        users.create_first_admin(runtime.engine, clock, email="root@example.com", password=PASSWORD, ip=None)
    admin = users.find_user(runtime.engine, "root@example.com")
    assert admin is not None
    email = f"{role}@example.com"
    made = in_unit(runtime.engine, clock, admin.actor(), users.create_user, email=email, password=PASSWORD, role=role)
    in_unit(runtime.engine, clock, admin.actor(), users.relax_2fa, made.id, "test account without a phone")
    client = TestClient(create_app(runtime), follow_redirects=False)
    token = _csrf(client.get("/login").text)
    signed = client.post("/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert signed.status_code == 303, signed.text
    return client


def statuses(page: str) -> list[str]:
    return re.findall(r'<tr data-status="([a-z_]+)">', page)


def message_links(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<td class="num"><a class="strong" href="/messages/(\d+)">', page)]


@pytest.fixture
def marketer(runtime: Runtime, clock: FrozenClock) -> TestClient:
    return sign_in(runtime, clock, "marketer")


def test_pages_need_a_session(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime), follow_redirects=False)
    users.create_first_admin(runtime.engine, runtime.clock, email="root@example.com", password=PASSWORD, ip=None)
    for path in ("/messages", "/messages/1", "/messages?status=held"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/login", path


def test_list_filters_and_reasons_in_words(api: TestClient, runtime: Runtime, marketer: TestClient) -> None:
    ids = seed(api, runtime)
    everything = marketer.get("/messages")
    assert everything.status_code == 200
    assert '<a href="/messages" aria-current="page">Messages</a>' in everything.text
    assert (
        message_links(everything.text)
        == sorted(ids[k] for k in ("sent", "no_consent", "missing", "quiet", "sms_skipped"))[::-1]
    )
    assert "<strong>5</strong> messages" in everything.text

    held = marketer.get("/messages", params={"status": "held"})
    assert statuses(held.text) == ["held", "held", "held"]
    assert "matching the filters" in held.text
    assert '<option value="held" selected>' in held.text  # the form shows what is applied
    assert "Quiet hours at the recipient&#39;s place" in held.text
    assert "Goes out at 2026-11-22 19:00 UTC" in held.text  # 08:00 in Auckland (UTC+13)
    assert "A template variable has no value and no fallback: contact.first_name." in held.text
    assert "No consent to contact them on this channel" in held.text or "No consent on any channel" in held.text

    by_reason = marketer.get("/messages", params={"reason": "quiet_hours"})
    assert message_links(by_reason.text) == [ids["quiet"]]
    by_channel = marketer.get("/messages", params={"channel": "sms", "status": "", "class": "", "reason": ""})
    assert by_channel.status_code == 200 and message_links(by_channel.text) == [ids["sms_skipped"]]
    by_class = marketer.get("/messages", params={"class": "marketing"})
    assert message_links(by_class.text) == [ids["no_consent"]]
    by_person = marketer.get("/messages", params={"person": str(ids["person_dee"])})
    assert message_links(by_person.text) == [ids["quiet"]]
    assert f'href="/contacts/{ids["person_dee"]}">person {ids["person_dee"]}</a>' in by_person.text
    nothing = marketer.get("/messages", params={"status": "delivered"})
    assert "No message matches these filters." in nothing.text


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"status": "lost"}, "status must be one of"),
        ({"channel": "pigeon"}, "channel must be one of"),
        ({"class": "spam"}, "class must be one of"),
        ({"reason": "quiet_hours%"}, "reason must be a reason kind"),
        ({"person": "abc"}, "person must be a person&#39;s id"),
        ({"person": "99999999999999999999"}, "person must be a person&#39;s id"),
    ],
)
def test_bad_filters_get_a_page_with_the_error(
    runtime: Runtime, marketer: TestClient, params: dict[str, str], shown: str
) -> None:
    response = marketer.get("/messages", params=params)
    assert response.status_code == 400
    assert shown in response.text
    assert 'role="alert"' in response.text or 'class="field-error"' in response.text
    assert "<strong>0</strong> messages" in response.text


def test_paging_keeps_the_filters(api: TestClient, runtime: Runtime, marketer: TestClient) -> None:
    person = _contact(api, emails=["pat@example.com"], timezone="Europe/London")
    made = [_send(api, f"bulk-{i}", contact_id=person)["id"] for i in range(52)]
    first = marketer.get("/messages", params={"status": "queued"})
    assert len(message_links(first.text)) == 50 and "Showing 1–50" in first.text
    assert "<strong>52</strong> messages" in first.text
    next_link = re.search(r'<a class="button" rel="next" href="([^"]+)"', first.text)
    assert next_link is not None and html.unescape(next_link.group(1)) == "/messages?status=queued&page=2"
    second = marketer.get(html.unescape(next_link.group(1)))
    assert message_links(second.text) == sorted(made)[:2][::-1]
    assert "Showing 51–52" in second.text and "Page 2 of 2" in second.text
    beyond = marketer.get("/messages", params={"status": "queued", "page": 9})
    assert beyond.status_code == 200 and "There is no page 9." in beyond.text
    assert marketer.get("/messages", params={"page": 0}).status_code == 422  # refused, not a 500


def test_message_page_shows_plan_attempts_and_why(api: TestClient, runtime: Runtime, marketer: TestClient) -> None:
    ids = seed(api, runtime)
    page = marketer.get(f"/messages/{ids['sms_skipped']}")
    assert page.status_code == 200
    text = page.text
    assert f'<a href="/contacts/{ids["person_eve"]}">eve@example.com</a>' in text  # no name: the address
    attempts = text.split('data-testid="attempts"')[1].split("</table>")[0]
    assert (
        "maildir" in attempts and ">sent</span>" in attempts and '<td><span class="tag">email</span></td>' in attempts
    )
    skips = text.split('data-testid="skips"')[1].split("</table>")[0]
    assert "No provider is configured for this channel." in skips and "no_provider" in skips
    assert 'data-testid="email-subject">Shipped<' in text
    assert '<pre class="content-text" data-testid="sms-text">Shipped</pre>' in text
    assert "No receipt from a provider yet." in text
    assert "Attempt 1 on email via maildir started" in text

    held = marketer.get(f"/messages/{ids['quiet']}").text
    assert 'data-testid="held-why"' in held and "Quiet hours at the recipient" in held
    assert "It goes out at 2026-11-22 19:00 UTC." in held
    assert "Recipient's zone: Pacific/Auckland (contact) · allowed window 08:00-20:00 local" in held
    skipped = marketer.get(f"/messages/{ids['no_consent']}").text
    assert "It will not go out by itself." in skipped and 'data-testid="no-content"' in skipped

    missing = marketer.get("/messages/999999")
    assert missing.status_code == 404 and "There is no message with id 999999." in missing.text
    assert marketer.get("/messages/abc").status_code == 404  # an id that cannot exist: not a 500


def test_hostile_content_stays_inert(api: TestClient, runtime: Runtime, marketer: TestClient) -> None:
    person = _contact(api, emails=["mal@example.com"], timezone="Europe/London", first_name=XSS_TEXT)
    sent = _send(
        api,
        "xss",
        contact_id=person,
        message_key=XSS_SUBJECT,
        content={"email": {"subject": XSS_SUBJECT, "text": XSS_TEXT, "html": XSS_HTML}},
    )
    listing = marketer.get("/messages").text
    assert XSS_SUBJECT not in listing and escape_(XSS_SUBJECT) in listing
    page = marketer.get(f"/messages/{sent['id']}")
    assert page.status_code == 200
    body = page.text
    for raw in (XSS_SUBJECT, XSS_TEXT, XSS_HTML, "<script>alert", "<img src=x"):
        assert raw not in body, raw
    assert escape_(XSS_SUBJECT) in body and escape_(XSS_TEXT) in body
    frame = re.search(r"<iframe ([^>]*)></iframe>", body)
    assert frame is not None
    attributes = frame.group(1)
    assert 'sandbox=""' in attributes  # no scripts, no same origin, no forms, no top navigation
    srcdoc = re.search(r'srcdoc="([^"]*)"', attributes)
    assert srcdoc is not None and html.unescape(srcdoc.group(1)) == XSS_HTML  # shown as sent, only framed
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    person_page = marketer.get(f"/contacts/{person}").text
    assert escape_(XSS_SUBJECT) in person_page and XSS_SUBJECT not in person_page


def test_person_timeline_links_every_message(api: TestClient, runtime: Runtime, marketer: TestClient) -> None:
    ids = seed(api, runtime)
    eve = ids["person_eve"]
    later = _send(api, "eve-2", contact_id=eve, content={"email": {"subject": "Second", "text": "Again"}})
    page = marketer.get(f"/contacts/{eve}").text
    entries = re.findall(r'<a class="timeline-detail" href="/messages/(\d+)">([^<]*)</a>', page)
    assert [int(i) for i, _ in entries] == [later["id"], ids["sms_skipped"]]
    assert "message.queued" in page and "message.sent" in page
    assert html.unescape(entries[1][1]) == "transactional via sms → email: Shipped"
    assert f'href="/messages?person={eve}"' in page and "2 messages in Messages" in page
    dee = marketer.get(f"/contacts/{ids['person_dee']}").text
    assert "message.held" in dee and "Quiet hours at the recipient" in dee
    nobody = _contact(api, emails=["quiet@example.com"])
    assert "0 messages in Messages" in marketer.get(f"/contacts/{nobody}").text


def test_agents_read_messages(api: TestClient, runtime: Runtime, clock: FrozenClock) -> None:
    ids = seed(api, runtime)
    agent = sign_in(runtime, clock, "agent")
    listing = agent.get("/messages")
    assert listing.status_code == 200 and '<a href="/messages" aria-current="page">Messages</a>' in listing.text
    assert agent.get(f"/messages/{ids['sent']}").status_code == 200
    assert agent.get(f"/contacts/{ids['person_ann']}").status_code == 200
    assert agent.get("/imports").status_code == 403  # still only what agents had before
