"""Operator accounts on both engines: set-up, roles, 2FA, recovery codes, throttling, sessions, audit, CLI."""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import re

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import herald.web
from herald.api.app import create_app
from herald.auth import audit, sessions, signin, throttle, totp, users
from herald.auth.audit import Actor
from herald.auth.sessions import SessionPolicy
from herald.auth.signin import SignInError
from herald.auth.throttle import ThrottledError
from herald.cli.main import app as cli_app
from herald.core.clock import FrozenClock
from herald.core.errors import ConflictError, ForbiddenError, InvalidInputError
from herald.db.auth_tables import auth_sessions, user_recovery_codes
from herald.db.runtime import Runtime
from herald.web.deps import require_csrf
from tests.helpers import in_unit

PASSWORD = "violet-tundra-47-ladder"
IP = "203.0.113.7"


def actions(engine: sa.Engine) -> list[str]:
    entries, _ = audit.list_audit(engine, page_size=500)
    return [entry.action for entry in entries]


def make_admin(engine: sa.Engine, clock: FrozenClock, email: str = "admin@example.com") -> users.User:
    return users.create_first_admin(engine, clock, email=email, password=PASSWORD, ip=IP)


def password_only_operator(
    engine: sa.Engine, clock: FrozenClock, admin: users.User, *, email: str, role: str, reason: str
) -> users.User:
    """An account the admin creates with 2FA relaxed (`reason`), so a test can sign in with the password alone."""
    user = in_unit(engine, clock, admin.actor(), users.create_user, email=email, password=PASSWORD, role=role)
    in_unit(engine, clock, admin.actor(), users.relax_2fa, user.id, reason)
    return user


def enrol(engine: sa.Engine, clock: FrozenClock, user: users.User) -> tuple[str, list[str]]:
    secret = totp.new_secret()
    codes = signin.confirm_enrolment(engine, clock, user, secret, totp.code_at(secret, clock.now()), IP)
    return secret, codes


# --- accounts and roles ----------------------------------------------------------------------


def test_first_admin_setup_happens_once(engine: sa.Engine, clock: FrozenClock) -> None:
    assert not users.any_users(engine)
    admin = make_admin(engine, clock, "Boss@Example.COM")
    assert admin.email == "boss@example.com" and admin.role == "admin"
    assert admin.totp_required and not admin.totp_enrolled
    with pytest.raises(ConflictError):
        users.create_first_admin(engine, clock, email="other@example.com", password=PASSWORD, ip=IP)
    assert [u.email for u in users.list_users(engine)] == ["boss@example.com"]
    assert actions(engine) == ["user.created"]


def test_accounts_validate_email_password_role_and_uniqueness(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    actor = admin.actor(IP)
    with pytest.raises(InvalidInputError) as bad_email:
        in_unit(engine, clock, actor, users.create_user, email="not-an-address", password=PASSWORD, role="agent")
    assert bad_email.value.fields["field"] == "email"
    with pytest.raises(InvalidInputError) as weak:
        in_unit(engine, clock, actor, users.create_user, email="a@example.com", password="password1234", role="agent")
    assert weak.value.fields["field"] == "password"
    with pytest.raises(InvalidInputError) as bad_role:
        in_unit(engine, clock, actor, users.create_user, email="a@example.com", password=PASSWORD, role="owner")
    assert bad_role.value.fields["field"] == "role"
    in_unit(engine, clock, actor, users.create_user, email="a@example.com", password=PASSWORD, role="marketer")
    with pytest.raises(ConflictError):
        in_unit(engine, clock, actor, users.create_user, email="A@example.com", password=PASSWORD, role="agent")


def test_role_changes_are_audited_and_the_last_admin_stays(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    actor = admin.actor(IP)
    with pytest.raises(ConflictError, match="at least one admin"):
        in_unit(engine, clock, actor, users.change_role, admin.id, "agent")
    agent = in_unit(engine, clock, actor, users.create_user, email="agent@example.com", password=PASSWORD, role="agent")
    promoted = in_unit(engine, clock, actor, users.change_role, agent.id, "admin")
    assert promoted.role == "admin"
    assert in_unit(engine, clock, actor, users.change_role, admin.id, "marketer").role == "marketer"
    entries, _ = audit.list_audit(engine, action="role.changed")
    assert [(e.target, e.details) for e in entries] == [
        ("admin@example.com", {"from": "admin", "to": "marketer"}),
        ("agent@example.com", {"from": "agent", "to": "admin"}),
    ]
    assert entries[0].actor == "admin@example.com" and entries[0].ip == IP


def test_relaxing_2fa_needs_a_reason_and_is_recorded(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    agent = in_unit(
        engine, clock, admin.actor(), users.create_user, email="agent@example.com", password=PASSWORD, role="agent"
    )
    assert signin.next_step(agent) == "enrol"
    with pytest.raises(InvalidInputError):
        in_unit(engine, clock, admin.actor(), users.relax_2fa, agent.id, "  ")
    relaxed = in_unit(engine, clock, admin.actor(), users.relax_2fa, agent.id, "Shared kiosk account, no phone")
    assert not relaxed.totp_required and relaxed.totp_relaxed_reason == "Shared kiosk account, no phone"
    assert relaxed.totp_relaxed_at == clock.now()
    assert signin.next_step(relaxed) == "full"
    entries, _ = audit.list_audit(engine, action="2fa.relaxed")
    assert entries[0].details == {"reason": "Shared kiosk account, no phone"}
    assert signin.next_step(in_unit(engine, clock, admin.actor(), users.require_2fa, agent.id)) == "enrol"


def test_admin_resets_another_operators_2fa(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    agent = in_unit(
        engine, clock, admin.actor(), users.create_user, email="ag@example.com", password=PASSWORD, role="agent"
    )
    enrol(engine, clock, agent)
    with engine.begin() as conn:
        sessions.start_session(conn, clock, SessionPolicy(), stage="full", user_id=agent.id)
    with pytest.raises(ForbiddenError):
        in_unit(engine, clock, admin.actor(), users.reset_2fa, admin.id)
    reset = in_unit(engine, clock, admin.actor(), users.reset_2fa, agent.id)
    assert not reset.totp_enrolled and signin.next_step(reset) == "enrol"
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(user_recovery_codes)) == 0
        assert conn.scalar(sa.select(sa.func.count()).select_from(auth_sessions)) == 0
    entries, _ = audit.list_audit(engine, action="2fa.reset")
    assert entries[0].target == "ag@example.com" and entries[0].details == {"sessions_ended": 1}


# --- sign-in factors ---------------------------------------------------------------------------


def test_wrong_password_and_unknown_account_answer_alike(engine: sa.Engine, clock: FrozenClock) -> None:
    make_admin(engine, clock)
    messages = []
    for email, password in [("admin@example.com", "wrong-password-here"), ("ghost@example.com", PASSWORD)]:
        with pytest.raises(SignInError) as caught:
            signin.check_password(engine, clock, email, password, IP)
        messages.append(caught.value.message)
    assert messages[0] == messages[1]
    assert signin.check_password(engine, clock, " ADMIN@example.com ", PASSWORD, IP).email == "admin@example.com"
    failed, _ = audit.list_audit(engine, action="login.failed")
    assert {e.target for e in failed} == {"admin@example.com", "ghost@example.com"}
    assert all(e.details == {"factor": "password"} and e.ip == IP for e in failed)


def test_totp_codes_work_once_with_one_step_of_drift(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    secret, _ = enrol(engine, clock, admin)
    admin = users.get_user(engine, admin.id)
    assert admin.totp_enrolled and signin.next_step(admin) == "second_factor"
    # The enrolment code's step is spent: the same code cannot sign in.
    with pytest.raises(SignInError):
        signin.check_totp(engine, clock, admin, totp.code_at(secret, clock.now()), IP)
    # The next step's code (one step of drift ahead) works once.
    ahead = totp.code_at(secret, clock.now() + dt.timedelta(seconds=30))
    signin.check_totp(engine, clock, admin, ahead, IP)
    with pytest.raises(SignInError):
        signin.check_totp(engine, clock, admin, ahead, IP)
    # Two steps ahead is too far.
    clock.advance(dt.timedelta(seconds=60))
    with pytest.raises(SignInError):
        signin.check_totp(engine, clock, admin, totp.code_at(secret, clock.now() + dt.timedelta(seconds=60)), IP)
    signin.check_totp(engine, clock, admin, totp.code_at(secret, clock.now()), IP)


def test_enrolment_needs_a_valid_code(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    secret = totp.new_secret()
    wrong = totp.code_at(secret, clock.now() + dt.timedelta(minutes=5))
    with pytest.raises(SignInError):
        signin.confirm_enrolment(engine, clock, admin, secret, wrong, IP)
    assert not users.get_user(engine, admin.id).totp_enrolled
    assert "2fa.enrolled" not in actions(engine)


def test_recovery_codes_are_single_use_and_regenerable(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    secret, codes = enrol(engine, clock, admin)
    admin = users.get_user(engine, admin.id)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{5}(-[a-z2-7]{5}){4}", code) for code in codes)
    with engine.connect() as conn:
        stored = set(conn.scalars(sa.select(user_recovery_codes.c.code_hash)))
    assert not stored & set(codes)  # only hashes are kept

    assert signin.check_recovery_code(engine, clock, admin, codes[3].upper().replace("-", " "), IP) == 9
    with pytest.raises(SignInError):
        signin.check_recovery_code(engine, clock, admin, codes[3], IP)
    assert signin.remaining_recovery_codes(engine, admin.id) == 9

    clock.advance(dt.timedelta(seconds=30))
    with pytest.raises(InvalidInputError):
        signin.regenerate_recovery_codes(engine, clock, admin, code="000000", password="", ip=IP)
    fresh = signin.regenerate_recovery_codes(
        engine, clock, admin, code=totp.code_at(secret, clock.now()), password="", ip=IP
    )
    assert signin.remaining_recovery_codes(engine, admin.id) == 10 and not set(fresh) & set(codes)
    with pytest.raises(SignInError):
        signin.check_recovery_code(engine, clock, admin, codes[0], IP)
    assert actions(engine).count("recovery.used") == 1 and "recovery.regenerated" in actions(engine)


# --- throttling ----------------------------------------------------------------------------------


def test_account_throttle_backs_off_exponentially_and_is_logged(engine: sa.Engine, clock: FrozenClock) -> None:
    make_admin(engine, clock)
    policy = throttle.DEFAULT_POLICY
    for _ in range(policy.account_free_failures - 1):
        with pytest.raises(SignInError):
            signin.check_password(engine, clock, "admin@example.com", "not-the-password", IP)
    assert "auth.locked" not in actions(engine)
    with pytest.raises(SignInError):
        signin.check_password(engine, clock, "admin@example.com", "not-the-password", IP)  # 5th: locks 1 s
    # Locked: even the right password is refused, without being checked.
    with pytest.raises(ThrottledError) as locked:
        signin.check_password(engine, clock, "admin@example.com", PASSWORD, IP)
    assert locked.value.fields["retry_after"] == 1
    clock.advance(dt.timedelta(seconds=1))
    with pytest.raises(SignInError):
        signin.check_password(engine, clock, "admin@example.com", "not-the-password", IP)  # 6th: locks 2 s
    clock.advance(dt.timedelta(seconds=1))
    with pytest.raises(ThrottledError) as again:
        signin.check_password(engine, clock, "admin@example.com", PASSWORD, IP)
    assert again.value.fields["retry_after"] == 1
    clock.advance(dt.timedelta(seconds=1))
    user = signin.check_password(engine, clock, "admin@example.com", PASSWORD, IP)

    locks, _ = audit.list_audit(engine, action="auth.locked")
    assert [e.details["locked_seconds"] for e in locks if e.target == "account:admin@example.com"] == [2, 1]
    # A correct password alone does not clear the count (it guards the second factor too) …
    with pytest.raises(SignInError):
        signin.check_password(engine, clock, "admin@example.com", "not-the-password", IP)
    with pytest.raises(ThrottledError):
        signin.check_password(engine, clock, "admin@example.com", PASSWORD, IP)
    # … a completed sign-in does.
    clock.advance(dt.timedelta(seconds=5))
    signin.record_sign_in(engine, clock, user, "password", IP)
    for _ in range(policy.account_free_failures - 1):
        with pytest.raises(SignInError):
            signin.check_password(engine, clock, "admin@example.com", "not-the-password", IP)
    signin.check_password(engine, clock, "admin@example.com", PASSWORD, IP)


def test_unknown_accounts_are_throttled_like_real_ones(engine: sa.Engine, clock: FrozenClock) -> None:
    for _ in range(throttle.DEFAULT_POLICY.account_free_failures):
        with pytest.raises(SignInError):
            signin.check_password(engine, clock, "ghost@example.com", PASSWORD, IP)
    with pytest.raises(ThrottledError):
        signin.check_password(engine, clock, "ghost@example.com", PASSWORD, IP)


def test_ip_throttle_spans_accounts(engine: sa.Engine, clock: FrozenClock) -> None:
    make_admin(engine, clock)
    for n in range(throttle.DEFAULT_POLICY.ip_free_failures):
        with pytest.raises(SignInError):
            signin.check_password(engine, clock, f"guess{n}@example.com", "whatever-they-try", IP)
    with pytest.raises(ThrottledError):
        signin.check_password(engine, clock, "admin@example.com", PASSWORD, IP)
    assert signin.check_password(engine, clock, "admin@example.com", PASSWORD, "198.51.100.1").role == "admin"


def test_second_factor_failures_count_against_the_account(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    enrol(engine, clock, admin)
    admin = users.get_user(engine, admin.id)
    for _ in range(throttle.DEFAULT_POLICY.account_free_failures):
        with pytest.raises(SignInError):
            signin.check_recovery_code(engine, clock, admin, "aaaaa-bbbbb-ccccc-ddddd-eeeee", IP)
    with pytest.raises(ThrottledError):
        signin.check_totp(engine, clock, admin, "123456", IP)
    failed, _ = audit.list_audit(engine, action="login.failed")
    assert {e.details["factor"] for e in failed} == {"recovery_code"}


def test_throttle_forgets_after_an_hour(engine: sa.Engine, clock: FrozenClock) -> None:
    keys = [throttle.account_key("x@example.com")]
    for _ in range(7):
        throttle.record_failure(engine, clock, keys)
        clock.advance(dt.timedelta(minutes=1))
    clock.advance(dt.timedelta(hours=1, minutes=1))
    throttle.check_allowed(engine, clock, keys)
    throttle.record_failure(engine, clock, keys)  # counts from 1 again: no lock
    throttle.check_allowed(engine, clock, keys)


# --- sessions ---------------------------------------------------------------------------------------


def _start(engine: sa.Engine, clock: FrozenClock, policy: SessionPolicy, user_id: int) -> sessions.NewSession:
    with engine.begin() as conn:
        return sessions.start_session(conn, clock, policy, stage="full", user_id=user_id, ip=IP, user_agent="UA")


def test_idle_timeout(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    policy = SessionPolicy()
    new = _start(engine, clock, policy, admin.id)
    assert len(new.token) >= 43  # 32 random bytes, base64url
    for _ in range(3):
        clock.advance(dt.timedelta(minutes=29))
        assert sessions.load_session(engine, clock, policy, new.token) is not None
    clock.advance(dt.timedelta(minutes=30))
    assert sessions.load_session(engine, clock, policy, new.token) is None
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(auth_sessions)) == 0


def test_absolute_lifetime_and_configurable_policy(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    policy = SessionPolicy.from_settings(idle_minutes=30, absolute_hours=12)
    new = _start(engine, clock, policy, admin.id)
    for _ in range(35):  # active every 20 minutes for 11 h 40 min
        clock.advance(dt.timedelta(minutes=20))
        assert sessions.load_session(engine, clock, policy, new.token) is not None
    clock.advance(dt.timedelta(minutes=20))
    assert sessions.load_session(engine, clock, policy, new.token) is None

    short = SessionPolicy.from_settings(idle_minutes=5, absolute_hours=1)
    other = _start(engine, clock, short, admin.id)
    clock.advance(dt.timedelta(minutes=5))
    assert sessions.load_session(engine, clock, short, other.token) is None


def test_pending_second_factor_sessions_expire_quickly(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    policy = SessionPolicy()
    with engine.begin() as conn:
        pending = sessions.start_session(conn, clock, policy, stage="second_factor", user_id=admin.id)
    clock.advance(dt.timedelta(minutes=9))
    assert sessions.load_session(engine, clock, policy, pending.token) is not None
    clock.advance(dt.timedelta(minutes=1))
    assert sessions.load_session(engine, clock, policy, pending.token) is None


def test_rotation_listing_revocation_and_sign_out_everywhere(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    other = in_unit(
        engine, clock, admin.actor(), users.create_user, email="o@example.com", password=PASSWORD, role="agent"
    )
    policy = SessionPolicy()
    with engine.begin() as conn:
        anon = sessions.start_session(conn, clock, policy, stage="anonymous")
        rotated = sessions.rotate_session(conn, clock, policy, anon.token, stage="full", user_id=admin.id)
    assert rotated.token != anon.token
    assert sessions.load_session(engine, clock, policy, anon.token) is None
    assert sessions.csrf_token(rotated.token) != sessions.csrf_token(anon.token)
    assert sessions.check_csrf(rotated.token, sessions.csrf_token(rotated.token))
    assert not sessions.check_csrf(rotated.token, sessions.csrf_token(anon.token))
    assert not sessions.check_csrf(rotated.token, None)

    second = _start(engine, clock, policy, admin.id)
    theirs = _start(engine, clock, policy, other.id)
    assert {s.id for s in sessions.list_sessions(engine, clock, policy, admin.id)} == {
        rotated.session.id,
        second.session.id,
    }
    with engine.begin() as conn:
        assert not sessions.revoke_session(conn, admin.id, theirs.session.id)  # not theirs to end
        assert sessions.revoke_session(conn, admin.id, second.session.id)
    assert sessions.load_session(engine, clock, policy, second.token) is None
    with engine.begin() as conn:
        assert sessions.end_user_sessions(conn, admin.id) == 1
    assert sessions.load_session(engine, clock, policy, rotated.token) is None
    assert sessions.load_session(engine, clock, policy, theirs.token) is not None


def test_password_change_ends_other_sessions(engine: sa.Engine, clock: FrozenClock) -> None:
    admin = make_admin(engine, clock)
    policy = SessionPolicy()
    here, elsewhere = _start(engine, clock, policy, admin.id), _start(engine, clock, policy, admin.id)
    with pytest.raises(InvalidInputError) as wrong:
        users.change_password(engine, clock, admin, current="nope", new="a new long phrase", keep_session_id=None)
    assert wrong.value.fields["field"] == "current_password"
    ended = users.change_password(
        engine, clock, admin, current=PASSWORD, new="amber-quartz-93-otter", keep_session_id=here.session.id
    )
    assert ended == 1
    assert sessions.load_session(engine, clock, policy, here.token) is not None
    assert sessions.load_session(engine, clock, policy, elsewhere.token) is None
    assert signin.check_password(engine, clock, "admin@example.com", "amber-quartz-93-otter", IP).id == admin.id


# --- audit log -------------------------------------------------------------------------------------


def test_audit_log_joins_transactions_and_pages_newest_first(engine: sa.Engine, clock: FrozenClock) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        audit.record_audit(conn, clock, "export.created", actor=Actor("x@example.com", id=1))
        raise RuntimeError("rolled back with the caller's work")
    assert actions(engine) == []
    for n in range(7):
        audit.record_audit(engine, clock, "backup.created", actor=audit.SYSTEM, details={"n": n})
        clock.advance(dt.timedelta(seconds=1))
    first, more = audit.list_audit(engine, page=1, page_size=3)
    assert [e.details["n"] for e in first] == [6, 5, 4] and more
    last, more = audit.list_audit(engine, page=3, page_size=3)
    assert [e.details["n"] for e in last] == [0] and not more
    assert first[0].at == clock.now() - dt.timedelta(seconds=1) and first[0].actor == "system"


# --- web: CSRF on every POST, roles ------------------------------------------------------------------


def test_every_web_post_route_checks_csrf() -> None:
    modules = [
        importlib.import_module(f"herald.web.{info.name}")
        for info in pkgutil.iter_modules(herald.web.__path__)
        if info.name.endswith("_views")
    ]
    posts = [
        route
        for module in modules
        for route in module.router.routes
        if isinstance(route, APIRoute) and "POST" in route.methods
    ]
    assert len(posts) >= 12
    for route in posts:
        calls = {dep.call for dep in route.dependant.dependencies}
        assert require_csrf in calls, route.path


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert match is not None
    return match.group(1)


def test_roles_gate_admin_pages_and_escape_user_data(runtime: Runtime, clock: FrozenClock) -> None:
    admin = make_admin(runtime.engine, clock)
    password_only_operator(
        runtime.engine, clock, admin, email="agent@example.com", role="agent", reason="<script>alert(1)</script> kiosk"
    )
    client = TestClient(create_app(runtime), follow_redirects=False)
    assert client.get("/admin/users").headers["location"] == "/login"
    token = _csrf(client.get("/login").text)
    signed_in = client.post("/login", data={"csrf_token": token, "email": "agent@example.com", "password": PASSWORD})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert "<script>alert(1)</script>" not in dashboard.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; kiosk" in dashboard.text
    assert "Content-Security-Policy" in dashboard.headers
    for path in ["/admin/users", "/admin/audit"]:
        assert client.get(path).status_code == 403
    forbidden = client.post("/admin/users", data={"csrf_token": _csrf(dashboard.text), "email": "x@example.com"})
    assert forbidden.status_code == 403
    assert len(users.list_users(runtime.engine)) == 2
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf_token": _csrf(dashboard.text)}).headers["location"] == "/login"
    assert client.get("/").headers["location"] == "/login"


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_creates_lists_and_resets(runtime: Runtime, clock: FrozenClock, cli_env: dict[str, str]) -> None:
    runner = CliRunner()
    made = runner.invoke(
        cli_app, ["users", "create", "--admin", "root@example.com", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert made.exit_code == 0, made.output
    weak = runner.invoke(cli_app, ["users", "create", "w@example.com", "--password-stdin"], input="password1234\n")
    assert weak.exit_code == 1 and "too common" in weak.output
    root = users.find_user(runtime.engine, "root@example.com")
    assert root is not None and root.role == "admin"
    enrol(runtime.engine, clock, root)
    listed = runner.invoke(cli_app, ["users", "list"])
    assert re.search(r"root@example\.com\s+admin\s+2fa:enrolled", listed.output)
    assert runner.invoke(cli_app, ["users", "reset-2fa", "root@example.com"]).exit_code == 0
    assert "2fa:pending" in runner.invoke(cli_app, ["users", "list"]).output
    assert runner.invoke(cli_app, ["users", "reset-2fa", "nobody@example.com"]).exit_code == 1
    entries, _ = audit.list_audit(runtime.engine, action="2fa.reset")
    assert entries[0].actor == "cli"


def test_https_cookie_flags_and_the_lockout_page(runtime: Runtime, clock: FrozenClock) -> None:
    make_admin(runtime.engine, clock)
    client = TestClient(create_app(runtime), base_url="https://herald.test", follow_redirects=False)
    page = client.get("/login")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("herald_session=")
    assert {"HttpOnly", "Secure", "SameSite=lax"} <= {part.strip() for part in cookie.split(";")}
    token = _csrf(page.text)
    statuses = [
        client.post("/login", data={"csrf_token": token, "email": "admin@example.com", "password": "nope"}).status_code
        for _ in range(throttle.DEFAULT_POLICY.account_free_failures)
    ]
    assert statuses == [401] * throttle.DEFAULT_POLICY.account_free_failures
    locked = client.post("/login", data={"csrf_token": token, "email": "admin@example.com", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.text and 'value="admin@example.com"' in locked.text
    cross_site = client.post(
        "/login",
        data={"csrf_token": token, "email": "admin@example.com", "password": PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403
