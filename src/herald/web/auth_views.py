"""Sign-in pages: one-time set-up, password, TOTP challenge, recovery code, forced enrolment, sign-out."""

from __future__ import annotations

from typing import Annotated, Any

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from markupsafe import Markup

from herald.auth import sessions, signin, totp, users
from herald.auth.sessions import Stage
from herald.auth.signin import Factor
from herald.core.errors import HeraldError
from herald.core.inputs import Text
from herald.db.unit_of_work import unit_of_work
from herald.web.deps import (
    CSRF,
    LoginRequired,
    SessionState,
    SignedIn,
    adopt_session,
    client_ip,
    ensure_session,
    forget_session,
    get_runtime,
    has_users,
    session_policy,
    session_state,
    user_agent,
)
from herald.web.render import FormErrors, redirect, render

router = APIRouter()
FormStr = Annotated[Text, Form()]
NEXT_PAGE: dict[str, str] = {"second_factor": "/login/2fa", "enrol": "/login/enrol", "full": "/"}


def _rotate(request: Request, *, stage: Stage, user_id: int, pending_secret: str | None = None) -> SessionState:
    """A new session id at every step up (login, 2FA completion): a fixated id becomes useless."""
    runtime = get_runtime(request)
    old_token = session_state(request).token  # read before the transaction: SQLite allows one writer
    with runtime.engine.begin() as conn:
        new = sessions.rotate_session(
            conn,
            runtime.clock,
            session_policy(runtime),
            old_token,
            stage=stage,
            user_id=user_id,
            pending_totp_secret=pending_secret,
            ip=client_ip(request),
            user_agent=user_agent(request),
        )
    return adopt_session(request, new)


def _complete_sign_in(request: Request, user: users.User, factor: Factor) -> SignedIn:
    runtime = get_runtime(request)
    state = _rotate(request, stage="full", user_id=user.id)
    signin.record_sign_in(runtime.engine, runtime.clock, user, factor, client_ip(request))
    assert state.session is not None and state.token is not None
    signed_in = SignedIn(user=user, session=state.session, token=state.token)
    request.state.signed_in = signed_in
    return signed_in


def _pending_user(request: Request, stage: Stage) -> tuple[SessionState, users.User]:
    state = session_state(request)
    session = state.session
    if session is None or session.stage != stage or session.user_id is None:
        raise LoginRequired
    return state, users.get_user(get_runtime(request).engine, session.user_id)


def _error_status(exc: HeraldError) -> int:
    # The class decides (ThrottledError 429, SignInError 401, InvalidInputError 422 …), as in the API.
    return exc.http_status


# --- set-up ---------------------------------------------------------------------------------


@router.get("/setup")
def setup_page(request: Request) -> Response:
    if has_users(request):
        return redirect(request, "/login")
    ensure_session(request)
    return render(request, "auth/setup.html", {"title": "Set up Herald"})


@router.post("/setup", dependencies=CSRF)
def setup_submit(
    request: Request, email: FormStr = "", password: FormStr = "", password_confirm: FormStr = ""
) -> Response:
    if has_users(request):
        return redirect(request, "/login")
    runtime = get_runtime(request)
    errors = FormErrors()
    if password != password_confirm:
        errors.put("password_confirm", "The two passwords differ.")
    else:
        try:
            user = users.create_first_admin(
                runtime.engine, runtime.clock, email=email, password=password, ip=client_ip(request)
            )
        except HeraldError as exc:
            errors.add(exc)
        else:
            request.app.state.web_has_users = True
            _rotate(request, stage="enrol", user_id=user.id)
            return redirect(request, "/login/enrol")
    ensure_session(request)  # the corrected form needs a live session and its CSRF token (a new one if it expired)
    context = {"title": "Set up Herald", "errors": errors, "values": {"email": email}}
    return render(request, "auth/setup.html", context, status_code=422)


# --- password --------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request) -> Response:
    if not has_users(request):
        return redirect(request, "/setup")
    state = ensure_session(request)
    if state.session is not None and state.session.stage == "full":
        return redirect(request, "/")
    return render(request, "auth/login.html", {"title": "Sign in"})


@router.post("/login", dependencies=CSRF)
def login_submit(request: Request, email: FormStr = "", password: FormStr = "") -> Response:
    runtime = get_runtime(request)
    try:
        user = signin.check_password(runtime.engine, runtime.clock, email, password, client_ip(request))
    except HeraldError as exc:
        context: dict[str, Any] = {
            "title": "Sign in",
            "errors": FormErrors().add(exc, "password"),
            "values": {"email": email},
        }
        ensure_session(request)
        return render(request, "auth/login.html", context, status_code=_error_status(exc))
    step = signin.next_step(user)
    if step == "full":
        _complete_sign_in(request, user, "password")
    else:
        _rotate(request, stage=step, user_id=user.id)
    return redirect(request, NEXT_PAGE[step])


# --- second factor ---------------------------------------------------------------------------


@router.get("/login/2fa")
def challenge_page(request: Request, method: Text = "code") -> Response:
    _, user = _pending_user(request, "second_factor")
    template_method = "recovery" if method == "recovery" else "code"
    return render(
        request, "auth/challenge.html", {"title": "Two-factor check", "method": template_method, "email": user.email}
    )


@router.post("/login/2fa", dependencies=CSRF)
def challenge_submit(request: Request, code: FormStr = "") -> Response:
    _, user = _pending_user(request, "second_factor")
    runtime = get_runtime(request)
    try:
        signin.check_totp(runtime.engine, runtime.clock, user, code, client_ip(request))
    except HeraldError as exc:
        context = {
            "title": "Two-factor check",
            "method": "code",
            "email": user.email,
            "errors": FormErrors().add(exc, "code"),
        }
        return render(request, "auth/challenge.html", context, status_code=_error_status(exc))
    _complete_sign_in(request, user, "totp")
    return redirect(request, "/")


@router.post("/login/recovery", dependencies=CSRF)
def recovery_submit(request: Request, recovery_code: FormStr = "") -> Response:
    _, user = _pending_user(request, "second_factor")
    runtime = get_runtime(request)
    try:
        signin.check_recovery_code(runtime.engine, runtime.clock, user, recovery_code, client_ip(request))
    except HeraldError as exc:
        context = {
            "title": "Two-factor check",
            "method": "recovery",
            "email": user.email,
            "errors": FormErrors().add(exc, "recovery_code"),
        }
        return render(request, "auth/challenge.html", context, status_code=_error_status(exc))
    _complete_sign_in(request, user, "recovery_code")
    return redirect(request, "/?notice=recovery-used")


# --- enrolment -------------------------------------------------------------------------------


def enrolment_context(secret: str, email: str) -> dict[str, Any]:
    uri = totp.provisioning_uri(secret, email)
    qr = segno.make(uri, error="m").svg_inline(scale=4, border=2, title="QR code for your authenticator app")
    return {"secret": secret, "qr_svg": Markup(qr), "otpauth_uri": uri}  # noqa: S704 - segno's own SVG


def pending_secret(request: Request, state: SessionState) -> str:
    """The secret offered to this session; kept until confirmed so a reload shows the same QR code."""
    assert state.session is not None
    if state.session.pending_totp_secret:
        return state.session.pending_totp_secret
    secret = totp.new_secret()
    sessions.set_pending_secret(get_runtime(request).engine, state.session.id, secret)
    return secret


@router.get("/login/enrol")
def enrol_page(request: Request) -> Response:
    state, user = _pending_user(request, "enrol")
    context = {
        "title": "Set up two-factor sign-in",
        "action": "/login/enrol",
        **enrolment_context(pending_secret(request, state), user.email),
    }
    return render(request, "auth/enrol.html", context)


@router.post("/login/enrol", dependencies=CSRF)
def enrol_submit(request: Request, code: FormStr = "") -> Response:
    state, user = _pending_user(request, "enrol")
    runtime = get_runtime(request)
    secret = pending_secret(request, state)
    try:
        codes = signin.confirm_enrolment(runtime.engine, runtime.clock, user, secret, code, client_ip(request))
    except HeraldError as exc:
        context = {
            "title": "Set up two-factor sign-in",
            "action": "/login/enrol",
            "errors": FormErrors().add(exc, "code"),
            **enrolment_context(secret, user.email),
        }
        return render(request, "auth/enrol.html", context, status_code=_error_status(exc))
    signed_in = _complete_sign_in(request, users.get_user(runtime.engine, user.id), "totp")
    return render(
        request,
        "auth/recovery_codes.html",
        {"title": "Your recovery codes", "codes": codes, "first_time": True, "user": signed_in.user},
    )


# --- sign-out --------------------------------------------------------------------------------


@router.post("/logout", dependencies=CSRF)
def logout(request: Request) -> Response:
    runtime = get_runtime(request)
    state = session_state(request)
    if state.token is not None:
        if state.session is not None and state.session.user_id is not None:
            user = users.get_user(runtime.engine, state.session.user_id)
            with unit_of_work(runtime.engine, runtime.clock, user.actor(client_ip(request))) as uow:
                sessions.sign_out(uow, state.token)
        else:
            sessions.end_session(runtime.engine, state.token)
    forget_session(request)
    return redirect(request, "/login")
