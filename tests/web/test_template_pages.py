"""The template editor in a real browser, on SQLite and PostgreSQL: a live preview for a chosen person that
says clearly what is missing, a fallback that fixes it, saving numbered versions and reading an older one."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.web.conftest import screenshot
from tests.web.test_auth_pages import enrol, set_up_admin


def api_post(base: str, key: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(base + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code in (200, 201, 202), response.text
    result: dict[str, Any] = response.json()
    return result


def test_template_editor_previews_live_and_saves_versions(server: str, page: Page, api_key: str, db_kind: str) -> None:
    base = server
    ann = api_post(base, api_key, "/api/contacts", {"emails": ["ann@example.com"], "first_name": "Ann"})["id"]
    zed = {"emails": ["zed@example.com"], "first_name": "Zed", "attributes": {"plan": "gold"}}
    api_post(base, api_key, "/api/contacts", zed)
    set_up_admin(page, base)
    enrol(page, base)

    page.get_by_role("link", name="Templates").click()
    expect(page.get_by_test_id("templates")).to_contain_text("No templates yet")
    page.get_by_role("link", name="New template").click()
    page.get_by_label("Template id").fill("welcome")
    page.get_by_label("E-mail subject").fill("Welcome, {{ first_name }}")
    page.get_by_label("E-mail text").fill("Hello {{ first_name }}, your plan: {{ plan }}.")

    # Pick Ann by searching her e-mail: she has no plan, so the preview says she would be held and why.
    page.get_by_test_id("person-search").fill("ann@")
    expect(page.get_by_test_id("preview-person")).to_have_value(str(ann))
    held = page.get_by_test_id("preview-held")
    expect(held).to_contain_text("Held for this person")
    expect(page.get_by_test_id("missing-variable")).to_have_text(["plan"])
    variables = page.get_by_test_id("preview-variables")
    expect(variables.locator('[data-variable="plan"]')).to_have_attribute("data-state", "missing")
    expect(variables.locator('[data-variable="first_name"]')).to_contain_text("Ann")
    screenshot(page, f"{db_kind}-template-editor-held")

    # A fallback, typed into the form: the preview follows while typing, without saving.
    page.get_by_label("Variable", exact=True).first.fill("plan")
    page.get_by_label("Fallback", exact=True).first.fill("basic")
    expect(page.get_by_test_id("preview-rendered")).to_contain_text("with the fallback for plan")
    parts = page.get_by_test_id("preview-part")
    expect(parts).to_have_text(["Welcome, Ann", "Hello Ann, your plan: basic."])

    # A broken draft says what is wrong in place of the preview.
    page.locator('[data-channel="sms"] summary').click()  # channels not in use start folded
    page.get_by_label("SMS body").fill("Hi {{ first_name")
    expect(page.get_by_test_id("preview-problem")).to_have_attribute("data-code", "template_invalid")
    page.get_by_label("SMS body").fill("Hi {{ first_name }}!")
    expect(parts).to_have_text(["Welcome, Ann", "Hello Ann, your plan: basic.", "Hi Ann!"])

    page.get_by_test_id("save-template").click()
    expect(page).to_have_url(base + "/templates/welcome?saved=1")
    expect(page.get_by_text("Saved as version 1.")).to_be_visible()
    expect(page.get_by_test_id("latest-version")).to_have_text("Latest: v1")

    # Zed has a plan: the stored fallback is not used for him.
    page.get_by_test_id("person-search").fill("Zed")
    expect(page.get_by_test_id("preview-part").nth(1)).to_have_text("Hello Zed, your plan: gold.")

    page.get_by_label("E-mail subject").fill("Welcome aboard, {{ first_name }}")
    page.get_by_test_id("save-template").click()
    expect(page).to_have_url(base + "/templates/welcome?saved=2")
    expect(page.get_by_test_id("versions").locator("li")).to_have_count(2)

    page.get_by_role("link", name="Version 1").click()
    expect(page.get_by_test_id("old-version")).to_contain_text("version 1")
    expect(page.get_by_label("E-mail subject")).to_have_value("Welcome, {{ first_name }}")
    expect(page.get_by_test_id("save-template")).to_have_text("Save as version 3")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(base + "/templates/welcome")
    expect(page.get_by_test_id("preview-rendered")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the editor scrolls sideways at phone width ({width} px)"
    screenshot(page, f"{db_kind}-template-editor-phone")

    page.goto(base + "/templates")
    row = page.get_by_test_id("templates").locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row.first).to_contain_text(re.compile(r"welcome.*email.*sms.*v2", re.S))
