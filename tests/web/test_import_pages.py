"""Import pages in a real browser, on SQLite and PostgreSQL: warnings with row numbers and a guessed
encoding on the result, and an upload that cannot start ends as failed with its reason."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.web.conftest import screenshot
from tests.web.test_auth_pages import enrol, set_up_admin

# cp1252, as Constant Contact exports it: "Müller" is not UTF-8, and "Ł" became "?".
WARNED = (
    "Email address,First name,Last name,Phone - work\r\n"
    "lukasz@firma.pl,?ukasz,Müller,n/a\r\n"
    "ida@example.com,Ida,Berg,12345\r\n"
    "omar..x@gmail.com,Omar,Nadir,\r\n"
).encode("cp1252")


def upload(page: Page, base: str, path: Path) -> None:
    page.goto(base + "/imports")
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Start import").click()
    expect(page).to_have_url(re.compile(re.escape(base) + r"/imports/\d+$"))


def test_import_page_lists_warnings_and_a_failed_upload_says_why(
    server: str, page: Page, tmp_path: Path, db_kind: str
) -> None:
    base = server
    set_up_admin(page, base)
    enrol(page, base)

    warned = tmp_path / "constant-contact.csv"
    warned.write_bytes(WARNED)
    upload(page, base, warned)
    expect(page.get_by_test_id("import-status")).to_have_text("Done")
    expect(page.get_by_test_id("import-progress-panel")).to_contain_text("3 of 3 rows")
    counts = page.get_by_test_id("import-counts")
    for key, value in {"created": 2, "rejected": 1, "warned": 2}.items():
        expect(counts.locator(f'[data-count="{key}"] dd')).to_have_text(str(value))
    expect(page.get_by_test_id("import-encoding")).to_have_text("cp1252 (guessed)")
    expect(page.get_by_test_id("import-encoding-note")).to_contain_text("read as cp1252 (guessed)")
    warnings = page.get_by_test_id("import-warnings").locator("tbody tr")
    expect(warnings).to_have_count(2)
    expect(warnings.nth(0)).to_contain_text("2")
    expect(warnings.nth(0)).to_contain_text("invalid_phone")
    expect(warnings.nth(0)).to_contain_text("'n/a' is not a phone number")
    expect(warnings.nth(1)).to_contain_text("3")
    rejects = page.get_by_test_id("import-rejects").locator("tbody tr")
    expect(rejects).to_have_count(1)
    expect(rejects.first).to_contain_text("invalid_email")
    expect(page.get_by_role("link", name="Download rejected rows and warnings (CSV)")).to_be_visible()
    screenshot(page, f"{db_kind}-import-warnings")

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    upload(page, base, empty)
    # The page polls until the batch is finished; a file that cannot start must get there too.
    expect(page.get_by_test_id("import-status")).to_have_text("Failed", timeout=10_000)
    expect(page.get_by_test_id("import-error")).to_contain_text("The file is empty.")
    expect(page.get_by_test_id("import-error")).to_have_attribute("data-code", "invalid_input")
    assert page.get_by_test_id("import-progress-panel").get_attribute("hx-trigger") is None  # polling stopped
    screenshot(page, f"{db_kind}-import-failed")

    page.goto(base + "/imports")
    recent = page.get_by_test_id("imports").locator("tbody tr")
    expect(recent.first).to_contain_text("failed")
    expect(recent.nth(1)).to_contain_text("done")
