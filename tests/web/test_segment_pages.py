"""The segment pages in a real browser on SQLite and PostgreSQL: a live count and preview while typing,
an error with the path for a bad tree, the condition builder, save, edit and delete."""

from __future__ import annotations

import json

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from herald.contacts import service
from herald.core.clock import FrozenClock
from tests.web.conftest import screenshot
from tests.web.test_auth_pages import enrol, set_up_admin


def add(engine: sa.Engine, clock: FrozenClock, email: str, first: str, country: str, tags: list[str]) -> int:
    fields = {"first_name": first, "last_name": "Page", "country": country, "tags": tags}
    return service.upsert_contact(
        engine, clock, service.ContactInput(emails=[email], fields=fields), default_region="US"
    )[0]


def test_segment_editor_counts_previews_and_saves(
    server: str, page: Page, engine: sa.Engine, clock: FrozenClock, db_kind: str
) -> None:
    base = server
    ann = add(engine, clock, "ann@example.com", "Ann", "FR", ["vip"])
    add(engine, clock, "bea@example.com", "Bea", "FR", [])
    add(engine, clock, "cid@example.com", "Cid", "DE", ["vip"])
    set_up_admin(page, base)
    enrol(page, base)

    page.goto(base + "/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
    expect(page).to_have_url(base + "/segments")
    page.get_by_role("link", name="New segment").click()

    definition = page.get_by_test_id("definition")
    definition.fill(json.dumps({"type": "country", "in": ["FR"]}))
    expect(page.get_by_test_id("live-count")).to_have_text("2")
    expect(page.get_by_test_id("preview")).to_contain_text("ann@example.com")
    expect(page.get_by_test_id("preview")).not_to_contain_text("cid@example.com")

    definition.fill('{"all": [{"type": "country", "in": ["France"]}]}')
    expect(page.get_by_test_id("live-error")).to_contain_text("definition.all[0].in[0]")

    # The builder appends a condition to the top-level "all" and the count follows.
    definition.fill(json.dumps({"all": [{"type": "country", "in": ["FR"]}]}))
    expect(page.get_by_test_id("live-count")).to_have_text("2")
    builder = page.get_by_test_id("builder")
    builder.get_by_label("Condition").select_option("tag")
    builder.get_by_label("Value").fill("vip")
    builder.get_by_role("button", name="Add condition").click()
    expect(page.get_by_test_id("definition")).to_have_value(
        json.dumps({"all": [{"type": "country", "in": ["FR"]}, {"type": "tag", "tag": "vip", "op": "has"}]}, indent=2)
    )
    expect(page.get_by_test_id("live-count")).to_have_text("1")
    expect(page.get_by_test_id("preview")).to_contain_text("Ann Page")
    screenshot(page, f"segment-editor-{db_kind}")

    page.get_by_label("Name", exact=True).fill("VIP France")
    page.get_by_role("button", name="Save segment").click()
    expect(page).to_have_url(f"{base}/segments/1?notice=created")
    expect(page.get_by_test_id("live-count")).to_have_text("1")
    expect(page.locator(f'[data-testid="preview"] a[href="/contacts/{ann}"]')).to_be_visible()

    # A bad definition is not saved: the editor keeps what was typed and says why.
    page.get_by_test_id("definition").fill('{"all": [{"type": "tag"}]}')
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_test_id("save-error")).to_contain_text("definition.all[0].tag")

    page.goto(base + "/segments")
    expect(page.get_by_test_id("segments")).to_contain_text("VIP France")
    page.get_by_role("link", name="VIP France").click()
    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(base + "/segments?notice=deleted")
    expect(page.get_by_test_id("segments")).to_contain_text("No segments yet.")
