"""Users & roles (admins only): create operators, change roles, relax or reset 2FA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from herald.auth import users
from herald.core.errors import HeraldError
from herald.core.inputs import Id, Text
from herald.db.unit_of_work import UnitOfWork
from herald.web.deps import CSRF, AdminDep, SignedIn, begin, get_runtime
from herald.web.render import FormErrors, redirect, render

router = APIRouter(prefix="/admin/users")
FormStr = Annotated[Text, Form()]

NOTICES = {
    "created": "The account is created. Its owner sets up two-factor sign-in at first sign-in.",
    "role": "The role is changed.",
    "relaxed": "Two-factor sign-in is no longer required for that account; the reason is recorded.",
    "required": "Two-factor sign-in is required again for that account.",
    "reset": "Two-factor sign-in was reset; that operator enrols again at next sign-in.",
}


def _page(
    request: Request,
    signed_in: SignedIn,
    *,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "title": "Users & roles",
        "people": users.list_users(get_runtime(request).engine),
        "roles": [(role, users.ROLE_LABELS[role]) for role in users.ROLES],
        "role_labels": users.ROLE_LABELS,
        "errors": errors or FormErrors(),
        "values": values or {"role": "agent"},
        "notice": notice,
        "me": signed_in.user.id,
    }
    return render(request, "users.html", context, status_code=status_code)


@router.get("")
def users_page(request: Request, signed_in: AdminDep, notice: Text = "") -> Response:
    return _page(request, signed_in, notice=NOTICES.get(notice))


@router.post("", dependencies=CSRF)
def create_user(
    request: Request, signed_in: AdminDep, email: FormStr = "", password: FormStr = "", role: FormStr = "agent"
) -> Response:
    try:
        with begin(request, signed_in) as uow:
            users.create_user(uow, email=email, password=password, role=role)
    except HeraldError as exc:
        errors = FormErrors().add(exc, "email")
        values = {"email": email, "role": role}
        return _page(request, signed_in, errors=errors, values=values, status_code=exc.http_status)
    return redirect(request, "/admin/users?notice=created")


def _row_action(
    request: Request, signed_in: AdminDep, user_id: int, field: str, action: Callable[[UnitOfWork], object]
) -> Response:
    """Run one per-user change in its unit of work; on failure show the message next to that user's field."""
    try:
        with begin(request, signed_in) as uow:
            action(uow)
    except HeraldError as exc:
        errors = FormErrors({f"{field}-{user_id}": exc.message})
        return _page(request, signed_in, errors=errors, status_code=exc.http_status)
    return redirect(request, f"/admin/users?notice={field}")


@router.post("/{user_id}/role", dependencies=CSRF)
def change_role(request: Request, signed_in: AdminDep, user_id: Id, role: FormStr = "") -> Response:
    return _row_action(
        request,
        signed_in,
        user_id,
        "role",
        lambda uow: users.change_role(uow, user_id, role),
    )


@router.post("/{user_id}/relax-2fa", dependencies=CSRF)
def relax_2fa(request: Request, signed_in: AdminDep, user_id: Id, reason: FormStr = "") -> Response:
    return _row_action(
        request,
        signed_in,
        user_id,
        "relaxed",
        lambda uow: users.relax_2fa(uow, user_id, reason),
    )


@router.post("/{user_id}/require-2fa", dependencies=CSRF)
def require_2fa(request: Request, signed_in: AdminDep, user_id: Id) -> Response:
    return _row_action(
        request,
        signed_in,
        user_id,
        "required",
        lambda uow: users.require_2fa(uow, user_id),
    )


@router.post("/{user_id}/reset-2fa", dependencies=CSRF)
def reset_2fa(request: Request, signed_in: AdminDep, user_id: Id) -> Response:
    return _row_action(request, signed_in, user_id, "reset", lambda uow: users.reset_2fa(uow, user_id))
