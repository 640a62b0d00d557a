"""Contacts, imports, duplicates and export & backups pages in a real browser, on SQLite and PostgreSQL:
an import watched through htmx polling, rejects download, person detail, undo, merge and unmerge,
escaping of hostile data, backups, exports, and an agent's limits."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import sqlalchemy as sa
from playwright.sync_api import Browser, Dialog, Page, Request, expect

from herald.auth import users
from herald.auth.audit import CLI, list_audit
from herald.contacts import importing, service
from herald.core.clock import FrozenClock
from herald.core.settings import Settings
from tests.helpers import in_unit
from tests.web.conftest import screenshot
from tests.web.test_auth_pages import (
    AGENT,
    AGENT_PASSWORD,
    enrol,
    set_up_admin,
    sign_in_password,
    sign_out,
)

GENERATED_ROWS = 4000
SEEDED_EMAILS = [
    "katherine.johnson@nasa.example",
    "kjohnson@nasa.example",
    "one@payload.example",
    "two@payload.example",
]
PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{7*7}}",
    "javascript:alert(1)",
]
HEADER = ["First Name", "Last Name", "Email", "Phone", "Company", "Country", "Tags", "Email Status", "Favourite Colour"]
MESSY_ROWS = [
    [
        "Grace",
        "Hopper",
        "Grace.Hopper@gmail.com",
        "+1 415 555 0101",
        "Navy Labs",
        "US",
        "vip; pioneer",
        "subscribed",
        "green",
    ],
    # The same person again, through a Googlemail address with dots removed and a +tag: one person.
    ["Grace", "Hopper", "gracehopper+news@googlemail.com", "", "", "", "", "", ""],
    # A household landline: same phone, another first name -> a suggestion, not a merge.
    ["Alan", "Turing", "alan@turing-house.example", "(212) 736-5000", "", "US", "", "subscribed", ""],
    ["Ethel", "Turing", "ethel@turing-house.example", "212 736 5000", "", "US", "", "", ""],
    ["Bad", "Row", "not-an-e-mail", "", "", "", "", "", ""],
    ['=HYPERLINK("http://evil.example","click")', "Formula", "broken@", "", "", "", "", "", ""],
    ["Hedy", "Lamarr", "hedy@lamarr.example", "", "Inventors", "AT", "", "subscribed", "=1+2"],
    ["Hedy", "Lamarr", "hedy@lamarr.example", "", "Inventors", "AT", "", "subscribed", "=1+2"],
]


def messy_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(MESSY_ROWS)
        for i in range(GENERATED_ROWS):
            writer.writerow([f"Person{i}", f"Generated{i % 97}", f"person{i}@bulk.example", "", "", "US", "", "", ""])
    return path


def seed_people(engine: sa.Engine, clock: FrozenClock) -> dict[str, int]:
    """People that exist before the import: a near-duplicate pair and hostile-looking data."""

    def add(email: str, **fields: object) -> int:
        data = service.ContactInput(emails=[email], fields=dict(fields))
        person_id, _ = service.upsert_contact(engine, clock, data, default_region="US")
        return person_id

    hostile = {"tags": PAYLOADS, "attributes": {payload: payload for payload in PAYLOADS}}
    return {
        "katherine": add("katherine.johnson@nasa.example", first_name="Katherine", last_name="Johnson", company="NASA"),
        # A different spelling of the last name, so only the shared company domain brings them together.
        "katharine": add("kjohnson@nasa.example", first_name="Katherine", last_name="Jonson", company="NASA"),
        "xss1": add(
            "one@payload.example", first_name=PAYLOADS[0], last_name=PAYLOADS[1], company=PAYLOADS[3], **hostile
        ),
        "xss2": add(
            "two@payload.example", first_name=PAYLOADS[0], last_name=PAYLOADS[1], company=PAYLOADS[2], **hostile
        ),
    }


def contacts_total(page: Page, base: str) -> str:
    page.goto(base + "/contacts")
    return page.get_by_test_id("contacts-total").inner_text()


def watch_messy_import(
    page: Page, base: str, engine: sa.Engine, clock: FrozenClock, data_dir: Path, db_kind: str
) -> str:
    """Open a pending batch's page, run the import beside it as the upload handler's thread does, and
    watch the page reach 100 % and the counts by polling alone; returns the batch URL."""
    name = "messy <contacts>.csv"
    data_dir.mkdir(parents=True, exist_ok=True)
    source = messy_csv(data_dir / "messy.csv")
    batch_id = in_unit(engine, clock, CLI, importing.create_batch, name, "csv", "US")
    batch_url = f"{base}/imports/{batch_id}"
    polls: list[str] = []
    page.on("request", lambda request: _note_poll(request, polls))
    page.goto(batch_url)
    expect(page.get_by_test_id("import-status")).to_have_text("Pending")
    expect(page.get_by_test_id("import-progress")).to_have_attribute("value", "0")
    assert page.get_by_test_id("import-progress-panel").get_attribute("hx-trigger") == "every 500ms"
    page.evaluate("window.heraldSamePage = true")  # gone if the browser loads the page again
    screenshot(page, f"{db_kind}-import-progress")

    report = importing.run_import(
        engine, clock, source, fmt="csv", batch_id=batch_id, file_name=name, rejects_dir=data_dir / "imports"
    )
    assert report.status == "done"
    expect(page.get_by_test_id("import-status")).to_have_text("Done")
    expect(page.get_by_test_id("import-percent")).to_have_text("100 %")
    expect(page.get_by_test_id("import-progress")).to_have_attribute("value", "100")
    assert page.evaluate("window.heraldSamePage") is True
    assert polls, "the progress fragment was never polled"
    assert page.get_by_test_id("import-progress-panel").get_attribute("hx-trigger") is None  # polling stopped
    expect(page.get_by_test_id("import-file")).to_have_text(name)

    counts = page.get_by_test_id("import-counts")
    expected = {"created": GENERATED_ROWS + 4, "deduplicated": 2, "rejected": 2, "suggested": 1, "merged": 0}
    for key, value in expected.items():
        expect(counts.locator(f'[data-count="{key}"] dd')).to_have_text(f"{value:,}")
    screenshot(page, f"{db_kind}-import-result")
    return batch_url


def upload_through_form(page: Page, base: str, tmp_path: Path, db_kind: str) -> str:
    """The upload form stores the file and imports it in a background thread; returns the batch URL."""
    path = tmp_path / "follow-up.csv"
    path.write_text(
        "First Name,Last Name,Email,Company\n"
        "Grace,Hopper,grace.hopper@gmail.com,US Navy\n"
        "Mary,Jackson,mary@langley.example,NACA\n"
        "Nobody,Reachable,,\n",
        encoding="utf-8",
    )
    page.goto(base + "/imports")
    expect(page.get_by_test_id("imports").locator("tbody tr")).to_have_count(1)
    page.get_by_label("Default region").fill("G1")
    page.get_by_role("button", name="Start import").click()  # no file, bad region: refused, nothing started
    expect(page.locator(".field-error")).to_have_text(["Choose a CSV file to import.", re.compile("two-letter")])
    expect(page.get_by_test_id("imports").locator("tbody tr")).to_have_count(1)
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_label("Format").select_option("auto")
    page.get_by_label("Default region").fill("gb")
    page.get_by_role("button", name="Start import").click()
    expect(page).to_have_url(re.compile(re.escape(base) + r"/imports/\d+$"))
    expect(page.get_by_test_id("import-status")).to_have_text("Done")  # whether polled or already done
    counts = page.get_by_test_id("import-counts")
    for key, value in {"created": 1, "updated": 1, "rejected": 1}.items():
        expect(counts.locator(f'[data-count="{key}"] dd')).to_have_text(str(value))
    expect(page.get_by_text("default region GB")).to_be_visible()
    page.goto(base + "/imports")
    recent = page.get_by_test_id("imports").locator("tbody tr")
    expect(recent).to_have_count(2)
    expect(recent.first).to_contain_text("follow-up.csv")
    expect(recent.nth(1)).to_contain_text("messy <contacts>.csv")
    screenshot(page, f"{db_kind}-imports")
    return recent.first.get_by_role("link").get_attribute("href") or ""


def _note_poll(request: Request, polls: list[str]) -> None:
    if request.url.endswith("/progress") and request.headers.get("hx-request") == "true":
        polls.append(request.url)


def check_rejects_download(page: Page) -> None:
    with page.expect_download() as info:
        page.get_by_role("link", name="Download rejected rows and warnings (CSV)").click()
    content = Path(info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0][:5] == ["row", "kind", "reason", "field", "message"]
    by_row = {row[0]: row for row in rows[1:]}
    assert set(by_row) == {"6", "7"}  # spreadsheet row numbers: the header is row 1
    assert by_row["6"][1:3] == ["reject", "invalid_email"] and "not-an-e-mail" in by_row["6"]
    formula = by_row["7"][rows[0].index("First Name")]
    assert formula == '\'=HYPERLINK("http://evil.example","click")'  # neutralised for spreadsheets


def check_imported_person(page: Page, base: str, db_kind: str) -> None:
    page.goto(base + "/contacts?q=hopper")
    expect(page.get_by_test_id("contacts-total")).to_contain_text("1 person")
    page.get_by_role("link", name="Grace Hopper").click()
    expect(page.get_by_test_id("person-name")).to_have_text("Grace Hopper")
    idents = page.get_by_test_id("identifiers")
    for text in ["Grace.Hopper@gmail.com", "gracehopper@gmail.com", "+1 415 555 0101", "+14155550101"]:
        expect(idents).to_contain_text(text)
    expect(idents.locator("tbody tr")).to_have_count(2)  # the Googlemail variant has the same match key
    email_row = page.get_by_test_id("consent").locator("tr", has_text="Email")
    expect(email_row.locator("td").first).to_contain_text("Allowed")
    expect(page.get_by_test_id("person-tags")).to_contain_text("pioneer")
    timeline = page.get_by_test_id("timeline")
    expect(timeline).to_contain_text("imported")
    expect(timeline).to_contain_text("messy <contacts>.csv row 2")
    expect(timeline).to_contain_text("consent.subscribed")
    expect(timeline).to_contain_text("messy <contacts>.csv row 3")  # the variant's row is kept as a source
    expect(timeline).to_contain_text("follow-up.csv row 2")  # the upload updated her company
    expect(page.get_by_test_id("sources").locator("tbody tr")).to_have_count(3)
    screenshot(page, f"{db_kind}-person")

    page.goto(base + "/contacts?q=lamarr")
    page.get_by_role("link", name="Hedy Lamarr").click()
    expect(page.get_by_test_id("attributes")).to_contain_text("=1+2")


def undo_imports(page: Page, base: str, first_url: str, second_path: str) -> None:
    """The older import is refused while the newer one built on its people; newest first works."""
    page.goto(first_url)
    page.once("dialog", lambda dialog: dialog.accept())  # hx-confirm asks first
    page.get_by_role("button", name="Undo import").click()
    expect(page.locator("#undo-result")).to_contain_text("undo them first")
    expect(page.get_by_test_id("import-status")).to_have_text("Done")
    for url in (base + second_path, first_url):
        page.goto(url)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Undo import").click()
        expect(page).to_have_url(url + "?notice=undone")
        expect(page.get_by_test_id("import-status")).to_have_text("Undone")
        expect(page.get_by_role("status")).to_contain_text("The import was undone")


def merge_and_unmerge(page: Page, base: str, people: dict[str, int], db_kind: str) -> None:
    page.goto(base + "/duplicates")
    page.get_by_role("button", name="Scan for duplicates").click()
    expect(page).to_have_url(base + "/duplicates?notice=scanned")
    pair = page.get_by_test_id("suggestion").filter(has_text="katherine.johnson@nasa.example")
    expect(pair.get_by_test_id("evidence")).to_contain_text("both at company domain nasa.example")
    expect(pair).to_contain_text("kjohnson@nasa.example")
    expect(page.get_by_test_id("suggestion").filter(has_text="one@payload.example")).to_contain_text(PAYLOADS[0])
    screenshot(page, f"{db_kind}-duplicates")

    keep_katharine = pair.locator(f'input[name="survivor_id"][value="{people["katharine"]}"]')
    keep_katharine.check()
    pair.get_by_role("button", name="Merge").click()
    expect(page).to_have_url(base + "/duplicates?notice=merged")
    expect(page.get_by_test_id("suggestion").filter(has_text="nasa.example")).to_have_count(0)

    page.goto(f"{base}/contacts/{people['katharine']}")
    idents = page.get_by_test_id("identifiers")
    expect(idents).to_contain_text("katherine.johnson@nasa.example")
    expect(idents).to_contain_text("kjohnson@nasa.example")
    expect(page.get_by_test_id("timeline")).to_contain_text("merged")
    page.goto(f"{base}/contacts/{people['katherine']}")
    expect(page.get_by_test_id("person-status")).to_have_text("Merged")
    page.get_by_role("link", name=re.compile("Open the surviving person")).click()
    expect(page).to_have_url(f"{base}/contacts/{people['katharine']}")

    page.goto(base + "/duplicates")
    page.get_by_test_id("merges").locator("tr", has_text="Jonson").get_by_role("button", name="Unmerge").click()
    expect(page).to_have_url(base + "/duplicates?notice=unmerged")
    expect(page.get_by_test_id("merges")).to_contain_text("undone")
    for key, email in (("katherine", "katherine.johnson@nasa.example"), ("katharine", "kjohnson@nasa.example")):
        page.goto(f"{base}/contacts/{people[key]}")
        expect(page.get_by_test_id("person-status")).to_have_text("Active")
        expect(page.get_by_test_id("identifiers").locator("tbody tr")).to_have_count(1)
        expect(page.get_by_test_id("identifiers")).to_contain_text(email)


def check_hostile_data_is_inert(page: Page, base: str, people: dict[str, int], db_kind: str) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(base + "/contacts?q=payload.example")
    table = page.get_by_test_id("contacts")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text(f"{PAYLOADS[0]} {PAYLOADS[1]}")
    for payload in PAYLOADS:
        expect(table).to_contain_text(payload)
    expect(table.locator("script, img")).to_have_count(0)

    page.goto(f"{base}/contacts/{people['xss1']}")
    expect(page.get_by_test_id("person-name")).to_have_text(f"{PAYLOADS[0]} {PAYLOADS[1]}")
    attributes = page.get_by_test_id("attributes")
    for payload in PAYLOADS:
        expect(attributes.locator("tr", has_text=payload).first).to_be_visible()
        expect(page.get_by_test_id("person-tags")).to_contain_text(payload)
    expect(page.get_by_test_id("person-name")).not_to_contain_text("49")
    expect(page.locator("main script, main img")).to_have_count(0)
    assert page.title().startswith(PAYLOADS[0])
    screenshot(page, f"{db_kind}-person-hostile")

    page.goto(base + "/duplicates")
    expect(page.get_by_test_id("suggestion").filter(has_text="payload.example")).to_contain_text(PAYLOADS[2])
    expect(page.locator("main script, main img")).to_have_count(0)
    page.remove_listener("dialog", on_dialog)
    assert dialogs == []


def check_exports_and_backups(page: Page, base: str, db_kind: str) -> None:
    page.goto(base + "/data")
    expect(page.get_by_test_id("last-verified")).to_have_text("No verified backup yet.")
    with page.expect_download() as info:
        page.get_by_test_id("export-people").click()
    assert info.value.suggested_filename == "contacts.csv"
    exported = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    emails = sorted(email for row in exported for email in json.loads(row["emails"]))
    assert emails == sorted(SEEDED_EMAILS)  # the undone import left nothing behind
    assert {row["company"] for row in exported} >= {"NASA", PAYLOADS[3]}
    with page.expect_download() as info:
        page.get_by_test_id("export-sources").click()
    assert info.value.suggested_filename == "contacts-sources.csv"

    page.get_by_role("button", name="Run backup now").click()
    expect(page).to_have_url(base + "/data?notice=verified")
    highlighted = page.get_by_test_id("last-verified-row")
    expect(highlighted).to_contain_text("Verified")
    expect(highlighted).to_contain_text("Latest verified")
    expect(highlighted).to_contain_text(re.compile(r"\d+ rows in \d+ tables"))
    highlighted.get_by_text(re.compile("rows in")).click()
    expect(highlighted).to_contain_text("people")
    expect(page.get_by_test_id("last-verified")).not_to_have_text("No verified backup yet.")
    screenshot(page, f"{db_kind}-data")


def check_agent_limits(browser: Browser, base: str, person_id: int) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    sign_in_password(page, base, AGENT, AGENT_PASSWORD)
    enrol(page, base)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Contacts")).to_be_visible()
    for label in ["Imports", "Duplicates", "Export & backups"]:
        expect(nav.get_by_role("link", name=label)).to_have_count(0)
    for path in ["/imports", "/imports/1", "/duplicates", "/data", "/data/export/people.csv"]:
        response = page.goto(base + path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    refused = page.request.post(base + "/data/backups", form={})
    assert refused.status == 403
    response = page.goto(f"{base}/contacts/{person_id}")
    assert response is not None and response.status == 200
    expect(page.get_by_test_id("identifiers")).to_contain_text("kjohnson@nasa.example")
    expect(page.get_by_role("link", name=re.compile("Import contacts"))).to_have_count(0)
    context.close()


def test_contact_pages_end_to_end(
    server: str,
    page: Page,
    browser: Browser,
    engine: sa.Engine,
    clock: FrozenClock,
    settings: Settings,
    tmp_path: Path,
    db_kind: str,
) -> None:
    base = server
    people = seed_people(engine, clock)
    set_up_admin(page, base)
    enrol(page, base)
    in_unit(engine, clock, CLI, users.create_user, email=AGENT, password=AGENT_PASSWORD, role="agent")

    before = contacts_total(page, base)
    assert before.startswith("4 people")
    screenshot(page, f"{db_kind}-contacts-before-import")
    first_url = watch_messy_import(page, base, engine, clock, settings.data_dir, db_kind)
    check_rejects_download(page)
    second_path = upload_through_form(page, base, tmp_path, db_kind)
    check_imported_person(page, base, db_kind)

    page.goto(base + "/contacts")
    expect(page.get_by_test_id("contacts-total")).to_contain_text(f"{GENERATED_ROWS + 9:,} people")
    expect(page.get_by_test_id("contacts").locator("tbody tr")).to_have_count(50)
    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(base + "/contacts?q=&page=2")
    expect(page.get_by_test_id("contacts-range")).to_have_text("Showing 51–100")
    screenshot(page, f"{db_kind}-contacts")

    undo_imports(page, base, first_url, second_path)
    assert contacts_total(page, base) == before
    page.goto(base + "/imports")
    expect(page.get_by_test_id("imports").locator("tbody tr", has_text="undone")).to_have_count(2)

    merge_and_unmerge(page, base, people, db_kind)
    check_hostile_data_is_inert(page, base, people, db_kind)
    check_exports_and_backups(page, base, db_kind)

    entries, _ = list_audit(engine)
    actions = {entry.action for entry in entries}
    assert {"import.started", "import.undone", "export.created", "backup.created", "contacts.merged"} <= actions

    sign_out(page, base)
    check_agent_limits(browser, base, people["katharine"])
