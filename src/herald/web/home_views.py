"""The dashboard: the first page after sign-in, with headline counts."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from herald.auth import signin, users
from herald.core.inputs import Text
from herald.db.tables import people
from herald.web.deps import SignedInDep, get_runtime
from herald.web.render import render

router = APIRouter()

NOTICES = {"recovery-used": "You signed in with a recovery code. That code no longer works."}


def _people_count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        count = conn.scalar(sa.select(sa.func.count()).select_from(people).where(people.c.status == "active"))
    return int(count or 0)


@router.get("/")
def dashboard(request: Request, signed_in: SignedInDep, notice: Text = "") -> Response:
    engine = get_runtime(request).engine
    remaining = signin.remaining_recovery_codes(engine, signed_in.user.id)
    context = {
        "title": "Dashboard",
        "people_count": _people_count(engine),
        "operator_count": len(users.list_users(engine)),
        "recovery_remaining": remaining,
        "notice": NOTICES.get(notice),
    }
    return render(request, "dashboard.html", context)
