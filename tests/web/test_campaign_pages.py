"""The campaign journey in a real browser, on SQLite and PostgreSQL: an operator builds a campaign (segment +
template + channel), reads its coverage and simulation, launches it and watches it finish with a real worker
delivering; held recipients are listed with their reasons in words, and the page works at phone width."""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Dialog, Page, expect

from herald.core.actor import SYSTEM
from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.segments.service import create_segment
from tests.helpers import in_unit
from tests.web.conftest import screenshot
from tests.web.test_auth_pages import enrol, set_up_admin
from tests.web.test_message_pages import daytime_zone
from tests.web.test_template_pages import api_post

SPRING = {"all": [{"type": "attribute", "name": "list", "op": "equals", "value": "spring"}]}


@pytest.fixture
def delivering_worker(server: str, cli_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A full `herald worker` (jobs, events and deliveries) beside the test server: e-mail goes to the Maildir."""
    herald = Path(sys.executable).parent / "herald"
    with (tmp_path / "worker.log").open("wb") as out:
        proc = subprocess.Popen(
            [str(herald), "worker", "--concurrency", "2"], env={**os.environ, **cli_env}, stdout=out, stderr=out
        )
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _people(base: str, key: str) -> dict[str, int]:
    zone = daytime_zone()  # quiet hours must not hold anyone in this test
    people = {
        "ann": {"first_name": "Ann", "consent": {"email": "subscribed"}},
        "bob": {"consent": {"email": "subscribed"}},  # no first name: held for a missing variable
        "cy": {"first_name": "Cy"},  # no marketing consent
    }
    ids = {}
    for name, fields in people.items():
        body = {"emails": [f"{name}@example.com"], "timezone": zone, "attributes": {"list": "spring"}, **fields}
        ids[name] = api_post(base, key, "/api/contacts", body)["id"]
    api_post(base, key, "/api/contacts", {"emails": ["dee@example.com"], "first_name": "Dee", "timezone": zone})
    return ids


def test_operator_builds_simulates_launches_and_watches_a_campaign_finish(
    server: str,
    page: Page,
    api_key: str,
    engine: sa.Engine,
    settings: Settings,
    delivering_worker: subprocess.Popen[bytes],
    db_kind: str,
) -> None:
    base = server
    ids = _people(base, api_key)
    for text in ("Hello {{ first_name }}, spring is here.", "Hi {{ first_name }}, a draft we will not send."):
        body = {"id": "spring", "parts": {"email.subject": "Spring news", "email.text": text}}
        api_post(base, api_key, "/api/templates", body)
    segment = in_unit(engine, SystemClock(), SYSTEM, create_segment, "Spring list", SPRING)
    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    set_up_admin(page, base)
    enrol(page, base)

    # Build it: segment (its live count), template (its versions and a preview), channel, class, schedule.
    page.get_by_role("link", name="Campaigns").click()
    expect(page.get_by_test_id("campaigns")).to_contain_text("No campaigns yet")
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Campaign name").fill("Spring news")
    page.get_by_label("Segment").select_option(str(segment.id))
    expect(page.get_by_test_id("segment-count")).to_have_attribute("data-count", "3")
    page.get_by_label("Template", exact=True).select_option("spring")
    expect(page.get_by_test_id("template-version").locator("option")).to_have_count(3)  # latest, v2, v1
    page.get_by_label("Preview for").fill("bob@")
    expect(page.get_by_test_id("preview-held")).to_contain_text("first_name")
    page.get_by_label("Preview for").fill("ann@")
    expect(page.get_by_test_id("preview-part").nth(1)).to_have_text("Hi Ann, a draft we will not send.")
    page.get_by_label("Version").select_option("1")  # the preview follows the version picked
    expect(page.get_by_test_id("preview-part").nth(1)).to_have_text("Hello Ann, spring is here.")
    page.get_by_label("First channel").select_option("email")
    page.get_by_label("Class").select_option("marketing")
    page.get_by_label("Now, at launch").check()
    screenshot(page, f"{db_kind}-campaign-editor")
    page.get_by_test_id("save-campaign").click()
    expect(page).to_have_url(re.compile(re.escape(base) + r"/campaigns/\d+$"))
    campaign_url = page.url

    # Read the coverage report and the simulation before launching.
    expect(page.get_by_test_id("campaign-status")).to_have_text("Draft")
    expect(page.get_by_test_id("coverage-line")).to_have_text(["first_name missing for 1 (33 %) → held"])
    outcomes = page.get_by_test_id("simulation-outcomes")
    expect(outcomes.locator('[data-outcome="send"] dd')).to_have_text("1")
    expect(outcomes.locator('[data-outcome="hold"] dd')).to_have_text("1")
    expect(outcomes.locator('[data-outcome="skip"] dd')).to_have_text("1")
    reasons = page.get_by_test_id("simulation-reasons")
    expect(reasons.locator('[data-reason="missing_variable"]')).to_contain_text("1")
    expect(reasons.locator('[data-reason="no_consent"]')).to_contain_text("1")
    expect(page.get_by_test_id("simulation-channels").locator('[data-channel="email"]')).to_contain_text("1")
    rows = page.get_by_test_id("simulation-rows").locator("tbody tr")
    expect(rows).to_have_count(3)
    ann_row = page.locator(f'tr[data-person="{ids["ann"]}"]')
    expect(ann_row).to_have_attribute("data-outcome", "send")
    expect(ann_row).to_contain_text("E-mail")
    expect(page.locator(f'tr[data-person="{ids["cy"]}"]')).to_contain_text("No consent")
    screenshot(page, f"{db_kind}-campaign-simulation")
    page.get_by_role("link", name="Full simulation").click()
    expect(page.get_by_role("heading", name="Simulation of Spring news")).to_be_visible()
    expect(page.get_by_test_id("simulation-rows").locator("tbody tr")).to_have_count(3)
    page.go_back()

    # Launch it and watch it finish: the page polls until nothing is left to move.
    page.get_by_test_id("launch-campaign").click()
    expect(page).to_have_url(campaign_url + "?done=launched")
    assert dialogs and dialogs[-1].startswith("Launch Spring news?")
    progress = page.get_by_test_id("campaign-progress")
    expect(progress).to_have_attribute("data-done", "true", timeout=60_000)
    expect(page.get_by_test_id("campaign-finished")).to_be_visible()
    counts = page.get_by_test_id("campaign-counts")
    sent = sum(int(counts.locator(f'[data-count="{key}"] dd').inner_text()) for key in ("sent", "delivered"))
    assert sent == 1
    expect(counts.locator('[data-count="failed"] dd')).to_have_text("0")
    expect(page.get_by_test_id("campaign-percent")).to_have_text("100 %")
    assert progress.get_attribute("hx-trigger") is None  # polling stopped
    held = page.get_by_test_id("held-recipients")
    expect(held.locator('tr[data-reason="missing_variable"]')).to_contain_text("first_name")
    screenshot(page, f"{db_kind}-campaign-finished")

    # The one e-mail reached Ann, once.
    maildir = mailbox.Maildir(settings.data_dir / "maildir", create=False)
    mails = list(maildir)  # iterating a mailbox yields its messages
    assert [m["To"] for m in mails] == ["ann@example.com"] and mails[0]["Subject"] == "Spring news"
    assert "Hello Ann, spring is here." in mails[0].get_payload(decode=True).decode()  # version 1, as chosen

    page.goto(base + "/campaigns")
    row = page.get_by_test_id("campaigns").locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.first).to_contain_text("Spring list")
    expect(row.first.locator("progress")).to_have_attribute("value", "100")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(campaign_url)
    expect(page.get_by_test_id("campaign-progress")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the campaign page scrolls sideways at phone width ({width} px)"
    screenshot(page, f"{db_kind}-campaign-phone")
