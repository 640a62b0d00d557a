"""Messages in a real browser on SQLite and PostgreSQL: send through the API, deliver, filter the list by
status, open the message (content, attempts, why one is held) and find it on the person's timeline."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import re
import zoneinfo
from typing import Any

import httpx
import sqlalchemy as sa
from playwright.sync_api import Dialog, Page, expect

from herald.channels.maildir import MaildirEmailProvider
from herald.channels.registry import ChannelRegistry
from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db.runtime import Runtime
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer
from tests.web.conftest import SCREENSHOTS, screenshot
from tests.web.test_auth_pages import enrol, set_up_admin

ZONES = ("Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Pacific/Auckland")
HOSTILE_HTML = "<script>alert('html')</script><h1>Your order shipped</h1><img src=x onerror=\"alert('img')\">"


def daytime_zone() -> str:
    """A zone where it is now well inside the default 08:00-20:00 window, so the e-mail is not held."""
    now = dt.datetime.now(dt.UTC)
    return next(z for z in ZONES if 9 <= now.astimezone(zoneinfo.ZoneInfo(z)).hour < 19)


def _post(base: str, key: str, path: str, body: dict[str, Any], idempotency: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} | ({"Idempotency-Key": idempotency} if idempotency else {})
    response = httpx.post(base + path, json=body, headers=headers, timeout=30)
    assert response.status_code in (201, 202), response.text
    result: dict[str, Any] = response.json()
    return result


def _deliver(settings: Settings, engine: sa.Engine) -> int:
    """One worker pass, as `herald worker` would run it, with the real clock the server used (in a thread:
    Playwright's sync API keeps an event loop running in this one)."""
    runtime = Runtime(settings=settings, engine=engine, clock=SystemClock())
    registry = ChannelRegistry([MaildirEmailProvider(settings.data_dir / "maildir", runtime.clock)])
    deliverer = Deliverer(runtime, registry, DeliverySettings(delivery_pass_seconds=30))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, deliverer.run_pass(concurrency=2)).result()


def test_messages_pages_end_to_end(
    server: str, page: Page, engine: sa.Engine, settings: Settings, api_key: str, db_kind: str
) -> None:
    base = server
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    set_up_admin(page, base)
    enrol(page, base)

    ann = _post(
        base, api_key, "/api/contacts", {"emails": ["ann@example.com"], "first_name": "Ann", "timezone": daytime_zone()}
    )
    bob = _post(base, api_key, "/api/contacts", {"emails": ["bob@example.com"], "first_name": "Bob"})
    content = {"email": {"subject": "Order 77 shipped", "text": "It is on its way.", "html": HOSTILE_HTML}}
    shipped = _post(
        base,
        api_key,
        "/api/messages",
        {"contact_id": ann["id"], "class": "transactional", "channels": ["email"], "content": content},
        "order-77",
    )
    held = _post(
        base,
        api_key,
        "/api/messages",
        {
            "contact_id": bob["id"],
            "class": "marketing",
            "channels": ["email"],
            "content": {"email": {"subject": "Sale", "text": "50% off"}},
        },
        "sale-1",
    )
    assert shipped["status"] == "queued" and held["status"] == "held"
    assert _deliver(settings, engine) == 1

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Messages").click()
    expect(page).to_have_url(base + "/messages")
    table = page.get_by_test_id("messages")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("messages-total")).to_contain_text("2 messages")
    screenshot(page, f"{db_kind}-messages")

    page.get_by_label("Status").select_option("held")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/messages\?status=held&"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("Bob")  # a skip renders nothing, but the row says who and why
    expect(table).to_contain_text("(nothing rendered)")
    expect(page.get_by_test_id("hold-reason")).to_contain_text("No consent")

    page.get_by_label("Status").select_option("sent")
    page.get_by_role("button", name="Filter").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(page.get_by_test_id("messages-total")).to_contain_text("1 message matching the filters")
    screenshot(page, f"{db_kind}-messages-sent")
    table.get_by_role("link", name="Order 77 shipped").click()

    expect(page).to_have_url(f"{base}/messages/{shipped['id']}")
    expect(page.get_by_test_id("message-status")).to_have_text("sent")
    attempts = page.get_by_test_id("attempts").locator("tbody tr")
    expect(attempts).to_have_count(1)
    expect(attempts.first).to_contain_text("maildir")
    expect(attempts.first).to_contain_text("email")
    expect(attempts.first).to_contain_text("sent")
    expect(page.get_by_test_id("email-subject")).to_have_text("Order 77 shipped")
    expect(page.get_by_test_id("email-text")).to_have_text("It is on its way.")
    frame = page.get_by_test_id("email-html")
    assert frame.get_attribute("sandbox") == ""
    # The HTML part renders inside its sandbox, and its script and onerror never run.
    expect(
        page.frame_locator('[data-testid="email-html"]').get_by_role("heading", name="Your order shipped")
    ).to_be_visible()
    expect(page.locator("main script, main img")).to_have_count(0)
    screenshot(page, f"{db_kind}-message")
    frame.scroll_into_view_if_needed()  # a full-page shot leaves an out-of-view sandboxed frame blank
    frame.screenshot(path=str(SCREENSHOTS / f"{db_kind}-message-html.png"))

    page.get_by_test_id("recipient").get_by_role("link", name="Ann").click()
    expect(page).to_have_url(f"{base}/contacts/{ann['id']}")
    entry = page.get_by_test_id("timeline-message")
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("message.sent")
    screenshot(page, f"{db_kind}-person-messages")
    entry.get_by_role("link").click()
    expect(page).to_have_url(f"{base}/messages/{shipped['id']}")

    page.goto(f"{base}/messages/{held['id']}")
    expect(page.get_by_test_id("held-why")).to_contain_text("No consent")
    expect(page.get_by_test_id("held-why")).to_contain_text("It will not go out by itself.")
    screenshot(page, f"{db_kind}-message-held")
    page.goto(f"{base}/contacts/{bob['id']}")
    expect(page.get_by_test_id("timeline-message")).to_contain_text("message.held")
    assert dialogs == []
