"""The duplicates page in a real browser on SQLite and PostgreSQL: both names and the evidence in words,
pages with the total, dismiss (CSRF-protected form) remembered by a re-scan, an unmerge reopens its pair."""

from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from herald.auth.audit import list_audit
from herald.contacts import service
from herald.core.clock import FrozenClock
from tests.web.conftest import screenshot
from tests.web.test_auth_pages import enrol, set_up_admin

PAIRS = 23  # two pages of 20


def add(engine: sa.Engine, clock: FrozenClock, email: str, first: str, last: str) -> int:
    data = service.ContactInput(emails=[email], fields={"first_name": first, "last_name": last})
    return service.upsert_contact(engine, clock, data, default_region="US")[0]


def seed(engine: sa.Engine, clock: FrozenClock) -> list[tuple[int, int]]:
    pairs = [
        (
            add(engine, clock, f"anna.k{k}@firm{k}.example", "Anna", f"Kowalska{k:02d}"),
            add(engine, clock, f"akowalska{k}@firm{k}.example", "Ana", f"Kowalska{k:02d}"),
        )
        for k in range(PAIRS)
    ]
    # Look-alike strangers at a free-mail provider: never on the page.
    add(engine, clock, "john.smith@gmail.com", "John", "Smith")
    add(engine, clock, "jonsmith1987@gmail.com", "Jon", "Smith")
    return pairs


def card(page: Page, a: int, b: int) -> object:
    return (
        page.get_by_test_id("suggestion")
        .filter(has=page.locator(f'a[href="/contacts/{a}"]'))
        .filter(has=page.locator(f'a[href="/contacts/{b}"]'))
    )


def test_duplicates_page_pages_dismisses_and_reopens(
    server: str, page: Page, engine: sa.Engine, clock: FrozenClock, db_kind: str
) -> None:
    base = server
    pairs = seed(engine, clock)
    set_up_admin(page, base)
    enrol(page, base)

    page.goto(base + "/duplicates")
    expect(page.get_by_test_id("no-suggestions")).to_be_visible()
    page.get_by_role("button", name="Scan for duplicates").click()
    expect(page).to_have_url(base + "/duplicates?notice=scanned")
    expect(page.get_by_test_id("suggestion-count")).to_have_text(str(PAIRS))
    expect(page.get_by_test_id("suggestion-range")).to_have_text(f"Showing 1–20 of {PAIRS}")
    expect(page.get_by_test_id("suggestion-page")).to_have_text("Page 1 of 2")
    expect(page.get_by_test_id("suggestion")).to_have_count(20)
    expect(page.get_by_test_id("suggestion").filter(has_text="gmail.com")).to_have_count(0)

    first = page.get_by_test_id("suggestion").first
    expect(first.get_by_test_id("pair-names")).to_contain_text(re.compile(r"Anna Kowalska\d\d #\d+ and Ana Kowalska"))
    evidence = first.get_by_test_id("evidence")
    expect(evidence).to_contain_text(re.compile(r"similar names \(\d+ % alike\)"))
    expect(evidence).to_contain_text(re.compile(r"both at company domain firm\d+\.example"))
    screenshot(page, f"{db_kind}-duplicates-paged")

    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(base + "/duplicates?page=2")
    expect(page.get_by_test_id("suggestion")).to_have_count(PAIRS - 20)
    expect(page.get_by_test_id("suggestion-range")).to_have_text(f"Showing 21–{PAIRS} of {PAIRS}")

    # Dismiss one pair: gone, and a re-scan does not bring it back.
    a, b = pairs[-1]
    card(page, a, b).get_by_role("button", name="Dismiss").click()  # type: ignore[attr-defined]
    expect(page).to_have_url(base + "/duplicates?notice=dismissed")
    expect(page.get_by_test_id("suggestion-count")).to_have_text(str(PAIRS - 1))
    page.get_by_role("button", name="Scan for duplicates").click()
    expect(page.get_by_test_id("suggestion-count")).to_have_text(str(PAIRS - 1))
    page.goto(base + "/duplicates?page=2")
    expect(card(page, a, b)).to_have_count(0)  # type: ignore[arg-type]
    # A forged form without the CSRF token changes nothing.
    forged = page.request.post(f"{base}/duplicates/1/dismiss", form={})
    assert forged.status in (400, 403)
    expect(page.get_by_test_id("suggestion-count")).to_have_text(str(PAIRS - 1))

    # Merge one pair from its card, then unmerge it: the suggestion is open again.
    a, b = pairs[0]
    page.goto(base + "/duplicates")
    pair = card(page, a, b)
    pair.locator(f'input[name="survivor_id"][value="{b}"]').check()  # type: ignore[attr-defined]
    pair.get_by_role("button", name="Merge").click()  # type: ignore[attr-defined]
    expect(page).to_have_url(base + "/duplicates?notice=merged")
    expect(page.get_by_test_id("suggestion-count")).to_have_text(str(PAIRS - 2))
    expect(card(page, a, b)).to_have_count(0)  # type: ignore[arg-type]
    page.get_by_test_id("merges").locator("tr", has_text="Kowalska00").get_by_role("button", name="Unmerge").click()
    expect(page).to_have_url(base + "/duplicates?notice=unmerged")
    expect(page.get_by_test_id("suggestion-count")).to_have_text(str(PAIRS - 1))
    expect(card(page, a, b)).to_have_count(1)  # type: ignore[arg-type]

    # Unknown suggestions get a clear page, not a server error.
    page.goto(base + "/duplicates")
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    missing = page.request.post(f"{base}/duplicates/99999/dismiss", form={"csrf_token": token or ""})
    assert missing.status == 404 and "No duplicate suggestion with id 99999" in missing.text()

    actions = [entry.action for entry in list_audit(engine)[0]]
    assert "contacts.suggestion_dismissed" in actions and "contacts.merged" in actions
