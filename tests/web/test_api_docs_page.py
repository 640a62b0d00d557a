"""/docs in Chromium with every request to another host blocked: Swagger UI still lists the operations."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Page, Route, expect

from tests.web.conftest import screenshot

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def test_docs_render_offline(page: Page, server: str) -> None:
    blocked: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in {"http", "https"} and urlsplit(url).hostname not in LOOPBACK:
            blocked.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", only_loopback)
    page.goto(f"{server}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Herald")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    paths = set(operations.all_inner_texts())
    assert {"/api/contacts", "/api/messages", "/api/templates"} <= {p.replace("\u200b", "") for p in paths}
    assert blocked == []  # nothing even tried to leave the machine
    screenshot(page, "api-docs-offline")
