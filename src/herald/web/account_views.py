"""Account settings: password, recovery codes, optional 2FA enrolment, sessions and sign-out everywhere."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from herald.auth import sessions, signin, users
from herald.core.errors import HeraldError
from herald.core.inputs import Id, Text
from herald.web.auth_views import enrolment_context, pending_secret
from herald.web.deps import (
    CSRF,
    SignedIn,
    SignedInDep,
    begin,
    client_ip,
    forget_session,
    get_runtime,
    session_policy,
    session_state,
)
from herald.web.render import FormErrors, redirect, render

router = APIRouter()
FormStr = Annotated[Text, Form()]

NOTICES = {
    "password-changed": "Your password is changed. Every other session was signed out.",
    "session-revoked": "That session is signed out.",
}


def _account_context(request: Request, signed_in: SignedIn, **extra: Any) -> dict[str, Any]:
    runtime = get_runtime(request)
    live = sessions.list_sessions(runtime.engine, runtime.clock, session_policy(runtime), signed_in.user.id)
    context: dict[str, Any] = {
        "title": "Account",
        "sessions": live,
        "current_session_id": signed_in.session.id,
        "recovery_remaining": signin.remaining_recovery_codes(runtime.engine, signed_in.user.id),
    }
    context.update(extra)
    return context


@router.get("/account")
def account_page(request: Request, signed_in: SignedInDep, notice: Text = "") -> Response:
    return render(request, "account.html", _account_context(request, signed_in, notice=NOTICES.get(notice)))


@router.post("/account/password", dependencies=CSRF)
def change_password(
    request: Request,
    signed_in: SignedInDep,
    current_password: FormStr = "",
    new_password: FormStr = "",
    new_password_confirm: FormStr = "",
) -> Response:
    runtime = get_runtime(request)
    errors = FormErrors()
    if new_password != new_password_confirm:
        errors.put("new_password_confirm", "The two new passwords differ.")
    else:
        try:
            users.change_password(
                runtime.engine,
                runtime.clock,
                signed_in.user,
                current=current_password,
                new=new_password,
                keep_session_id=signed_in.session.id,
                ip=client_ip(request),
            )
        except HeraldError as exc:
            field = exc.fields.get("field")
            errors["new_password" if field == "password" else str(field or "current_password")] = exc.message
        else:
            return redirect(request, "/account?notice=password-changed")
    return render(request, "account.html", _account_context(request, signed_in, errors=errors), status_code=422)


@router.post("/account/recovery-codes", dependencies=CSRF)
def regenerate_codes(request: Request, signed_in: SignedInDep, code: FormStr = "", password: FormStr = "") -> Response:
    runtime = get_runtime(request)
    try:
        codes = signin.regenerate_recovery_codes(
            runtime.engine, runtime.clock, signed_in.user, code=code, password=password, ip=client_ip(request)
        )
    except HeraldError as exc:
        errors = FormErrors().add(exc, "code")
        return render(
            request, "account.html", _account_context(request, signed_in, errors=errors), status_code=exc.http_status
        )
    return render(
        request, "auth/recovery_codes.html", {"title": "Your new recovery codes", "codes": codes, "first_time": False}
    )


@router.get("/account/2fa")
def enrol_page(request: Request, signed_in: SignedInDep) -> Response:
    if signed_in.user.totp_enrolled:
        return redirect(request, "/account")
    secret = pending_secret(request, session_state(request))
    context = {
        "title": "Set up two-factor sign-in",
        "action": "/account/2fa",
        **enrolment_context(secret, signed_in.user.email),
    }
    return render(request, "auth/enrol.html", context)


@router.post("/account/2fa", dependencies=CSRF)
def enrol_submit(request: Request, signed_in: SignedInDep, code: FormStr = "") -> Response:
    if signed_in.user.totp_enrolled:
        return redirect(request, "/account")
    runtime = get_runtime(request)
    secret = pending_secret(request, session_state(request))
    try:
        codes = signin.confirm_enrolment(
            runtime.engine, runtime.clock, signed_in.user, secret, code, client_ip(request)
        )
    except HeraldError as exc:
        context = {
            "title": "Set up two-factor sign-in",
            "action": "/account/2fa",
            "errors": FormErrors().add(exc, "code"),
            **enrolment_context(secret, signed_in.user.email),
        }
        return render(request, "auth/enrol.html", context, status_code=422)
    sessions.set_pending_secret(runtime.engine, signed_in.session.id, None)
    return render(
        request, "auth/recovery_codes.html", {"title": "Your recovery codes", "codes": codes, "first_time": False}
    )


@router.post("/account/sessions/{session_id}/revoke", dependencies=CSRF)
def revoke_session(request: Request, signed_in: SignedInDep, session_id: Id) -> Response:
    with begin(request, signed_in) as uow:
        sessions.revoke_own_session(uow, session_id)
    if session_id == signed_in.session.id:
        forget_session(request)
        return redirect(request, "/login")
    if request.headers.get("HX-Request"):
        return HTMLResponse("")  # htmx swaps the session's row out
    return redirect(request, "/account?notice=session-revoked")


@router.post("/account/sessions/end-all", dependencies=CSRF)
def end_all_sessions(request: Request, signed_in: SignedInDep) -> Response:
    """Sign out everywhere, this browser included."""
    with begin(request, signed_in) as uow:
        sessions.end_own_sessions(uow)
    forget_session(request)
    return redirect(request, "/login")
