"""The audit log page (admins only): newest first, paged."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from herald.auth import audit
from herald.web.deps import AdminDep, get_runtime
from herald.web.render import render

router = APIRouter()


@router.get("/admin/audit")
def audit_page(request: Request, signed_in: AdminDep, page: int = Query(1, ge=1, le=1_000_000)) -> Response:
    entries, has_older = audit.list_audit(get_runtime(request).engine, page=page)
    context = {
        "ACTOR_KINDS": audit.ACTOR_KINDS,
        "title": "Audit log",
        "entries": entries,
        "page": page,
        "has_older": has_older,
    }
    return render(request, "audit.html", context)
