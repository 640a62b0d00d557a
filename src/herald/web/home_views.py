"""The dashboard: the first page after sign-in, with headline counts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from herald.auth import signin, users
from herald.contacts.service import count_active_people
from herald.core.inputs import Text
from herald.web.deps import SignedInDep, get_runtime
from herald.web.render import render

router = APIRouter()

NOTICES = {"recovery-used": "You signed in with a recovery code. That code no longer works."}


@router.get("/")
def dashboard(request: Request, signed_in: SignedInDep, notice: Text = "") -> Response:
    engine = get_runtime(request).engine
    remaining = signin.remaining_recovery_codes(engine, signed_in.user.id)
    context = {
        "title": "Dashboard",
        "people_count": count_active_people(engine),
        "operator_count": len(users.list_users(engine)),
        "recovery_remaining": remaining,
        "notice": NOTICES.get(notice),
    }
    return render(request, "dashboard.html", context)
