"""Sign-in in a real browser: first-admin set-up, enforced TOTP enrolment, replay refusal, recovery codes,
CSRF refusals and role checks, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import subprocess
import time

import pyotp
from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import screenshot

ADMIN = "admin@example.com"
AGENT = "agent@example.com"
PASSWORD = "violet-tundra-47-ladder"
AGENT_PASSWORD = "amber-quartz-93-otter"


def oathtool(secret: str, unix_time: int) -> str:
    out = subprocess.run(
        ["oathtool", "--totp", "-b", secret, "-N", f"@{unix_time}"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def code_at(secret: str, unix_time: int) -> str:
    """pyotp's code for that instant, cross-checked against oathtool."""
    code = pyotp.TOTP(secret).at(unix_time)
    assert code == oathtool(secret, unix_time)
    return code


def set_up_admin(page: Page, base: str, shots: str | None = None) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(base + "/setup")
    expect(page.get_by_role("heading", name="Set up Herald")).to_be_visible()
    if shots:
        screenshot(page, f"{shots}-setup")
    page.get_by_label("Your e-mail address").fill(ADMIN)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create admin account").click()
    expect(page).to_have_url(base + "/login/enrol")


def enrol(page: Page, base: str, shots: str | None = None) -> tuple[str, int, list[str]]:
    """Complete forced enrolment; returns the secret, the enrolment time and the recovery codes."""
    expect(page.get_by_role("heading", name="Set up two-factor sign-in")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    if shots:
        screenshot(page, f"{shots}-enrolment")
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    now = int(time.time())
    page.get_by_label("6-digit code from the app").fill(code_at(secret, now))
    page.get_by_role("button", name="Confirm and continue").click()
    codes_list = page.get_by_test_id("recovery-codes")
    expect(codes_list).to_be_visible()
    codes = [code.strip() for code in codes_list.locator("code").all_inner_texts()]
    assert len(codes) == 10 and len(set(codes)) == 10
    page.get_by_role("link", name=re.compile("I have saved them")).click()
    expect(page).to_have_url(base + "/")
    return secret, now, codes


def sign_out(page: Page, base: str) -> None:
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(base + "/login")


def sign_in_password(page: Page, base: str, email: str, password: str) -> None:
    page.goto(base + "/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()


def submit_code(page: Page, code: str) -> None:
    page.get_by_label("6-digit code").fill(code)
    page.get_by_role("button", name="Verify").click()


def submit_recovery_code(page: Page, base: str, code: str) -> None:
    page.get_by_role("link", name="Use a recovery code").click()
    expect(page).to_have_url(base + "/login/2fa?method=recovery")
    page.get_by_label("Recovery code", exact=True).fill(code)
    page.get_by_role("button", name="Sign in").click()


def test_first_admin_enrols_and_signs_in_with_one_time_codes(
    server: str, page: Page, browser: Browser, db_kind: str
) -> None:
    base = server
    set_up_admin(page, base, shots=db_kind)
    secret, enrolled_at, codes = enrol(page, base, shots=db_kind)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_test_id("people-count")).to_have_text("0")
    screenshot(page, f"{db_kind}-dashboard")

    # A POST without the CSRF token is refused and changes nothing.
    refused = page.request.post(base + "/logout", form={})
    assert refused.status == 403 and "Request refused" in refused.text()
    assert page.request.post(base + "/logout", form={"csrf_token": "0" * 64}).status == 403
    page.reload()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    # Password, then the next step's code (the enrolment step is spent; one step of drift is allowed).
    sign_out(page, base)
    sign_in_password(page, base, ADMIN, PASSWORD)
    expect(page).to_have_url(base + "/login/2fa")
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    screenshot(page, f"{db_kind}-challenge")
    next_code = code_at(secret, enrolled_at + 30)
    submit_code(page, next_code)
    expect(page).to_have_url(base + "/")

    # The same code again, within the same window: refused.
    sign_out(page, base)
    sign_in_password(page, base, ADMIN, PASSWORD)
    submit_code(page, next_code)
    expect(page).to_have_url(base + "/login/2fa")
    expect(page.locator(".field-error")).to_contain_text("not valid")

    # A recovery code works once…
    submit_recovery_code(page, base, codes[0])
    expect(page).to_have_url(base + "/?notice=recovery-used")
    expect(page.get_by_role("status")).to_contain_text("recovery code")
    sign_out(page, base)
    # …and fails the second time, while an unused one still works.
    sign_in_password(page, base, ADMIN, PASSWORD)
    submit_recovery_code(page, base, codes[0])
    expect(page.locator(".field-error")).to_contain_text("already used")
    page.get_by_label("Recovery code", exact=True).fill(codes[1])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/?notice=recovery-used")

    # A second browser signs in; the first one ends that session in place (htmx, CSRF header).
    other = browser.new_context()
    other_page = other.new_page()
    sign_in_password(other_page, base, ADMIN, PASSWORD)
    submit_recovery_code(other_page, base, codes[2])
    expect(other_page).to_have_url(base + "/?notice=recovery-used")
    page.goto(base + "/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("Recovery codes left:")).to_contain_text("7")
    rows = page.get_by_test_id("sessions").locator("tbody tr")
    expect(rows).to_have_count(2)
    screenshot(page, f"{db_kind}-account")
    rows.filter(has_not_text="This browser").get_by_role("button", name="Revoke").click()
    expect(rows).to_have_count(1)
    assert page.url == base + "/account"
    other_page.goto(base + "/")
    expect(other_page).to_have_url(base + "/login")
    other.close()

    page.goto(base + "/admin/users")
    expect(page.get_by_test_id("users")).to_contain_text(ADMIN)
    screenshot(page, f"{db_kind}-users")

    page.goto(base + "/admin/audit")
    audit = page.get_by_test_id("audit")
    for action in ["user.created", "2fa.enrolled", "login.succeeded", "login.failed", "recovery.used", "logout"]:
        expect(audit).to_contain_text(action)
    expect(audit.locator("tbody tr").first).to_contain_text("session.revoked")  # newest first
    screenshot(page, f"{db_kind}-audit")


def test_setup_refuses_a_post_without_csrf_token(server: str, page: Page) -> None:
    base = server
    page.goto(base + "/setup")
    form = {"email": ADMIN, "password": PASSWORD, "password_confirm": PASSWORD}
    refused = page.request.post(base + "/setup", form=form)
    assert refused.status == 403
    assert page.request.post(base + "/setup", form={**form, "csrf_token": "f" * 64}).status == 403
    page.goto(base + "/")
    expect(page).to_have_url(base + "/setup")  # still no account


def test_agent_enrols_and_gets_403_on_admin_pages(server: str, page: Page, db_kind: str) -> None:
    base = server
    set_up_admin(page, base)
    enrol(page, base)

    page.goto(base + "/admin/users")
    page.get_by_label("E-mail address").fill(AGENT)
    page.get_by_label("First password").fill(AGENT_PASSWORD)
    page.get_by_label("Role", exact=True).select_option("agent")
    page.get_by_role("button", name="Add operator").click()
    expect(page).to_have_url(base + "/admin/users?notice=created")
    row = page.get_by_test_id("users").locator("tr", has_text=AGENT)
    expect(row).to_contain_text("Enrols at next sign-in")
    sign_out(page, base)

    # The agent must enrol before reaching any page.
    sign_in_password(page, base, AGENT, AGENT_PASSWORD)
    expect(page).to_have_url(base + "/login/enrol")
    page.goto(base + "/")
    expect(page).to_have_url(base + "/login")
    sign_in_password(page, base, AGENT, AGENT_PASSWORD)
    enrol(page, base)

    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    for path in ["/admin/users", "/admin/audit"]:
        response = page.goto(base + path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    screenshot(page, f"{db_kind}-forbidden")
