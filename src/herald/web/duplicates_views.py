"""Duplicates page: suggested pairs with both names and the evidence, a page at a time; merge, dismiss, unmerge."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from herald.contacts import dedupe, service
from herald.contacts.dedupe import Suggestion
from herald.contacts.evidence import describe
from herald.core.errors import HeraldError, NotFoundError
from herald.core.inputs import Id, Text
from herald.db.engine import Engine
from herald.jobs import store as job_store
from herald.jobs.scans import queue_scan
from herald.web.contacts_views import StaffDep, full_name, not_found
from herald.web.deps import CSRF, begin, get_runtime
from herald.web.render import redirect, render

router = APIRouter(prefix="/duplicates")
PAGE_SIZE = 20  # each suggestion loads two full records side by side

NOTICES = {
    "scanned": "Scan finished: pairs with evidence beyond a similar name are listed below.",
    "merged": "Merged. The surviving person now holds both records; the merge can be undone below.",
    "dismissed": "Dismissed. That pair is not suggested again.",
    "unmerged": "Unmerged: both people are back as they were.",
}


def _side(engine: Engine, person_id: int) -> dict[str, Any] | None:
    try:
        person = service.contact_detail(engine, person_id)
    except NotFoundError:
        return None
    return {
        "id": person_id,
        "status": person["status"],
        "name": full_name(person),
        "company": person["company"],
        "country": person["country"],
        "identifiers": person["identifiers"],
        "tags": person["tags"],
        "sources": len(person["sources"]),
    }


def _pairs(engine: Engine, suggestions: list[Suggestion]) -> list[dict[str, Any]]:
    """Both people of each suggestion in full, and the evidence in words."""
    pairs = []
    for suggestion in suggestions:
        a, b = _side(engine, suggestion.person_a_id), _side(engine, suggestion.person_b_id)
        if a and b:
            evidence = [describe(e) for e in suggestion.evidence] or [suggestion.reason]
            pairs.append({"suggestion": suggestion, "a": a, "b": b, "evidence": evidence})
    return pairs


def _merge_rows(engine: Engine) -> list[dict[str, Any]]:
    rows = service.list_merges(engine, limit=30)
    names: dict[int, str] = {}
    for row in rows:
        for pid in (row["survivor_id"], row["merged_id"]):
            if pid not in names:
                side = _side(engine, pid)
                names[pid] = (side["name"] if side else "") or f"Person {pid}"
    return [row | {"survivor_name": names[row["survivor_id"]], "merged_name": names[row["merged_id"]]} for row in rows]


def _page(
    request: Request,
    *,
    page: int = 1,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
    scan: dict[str, Any] | None = None,
) -> Response:
    engine = get_runtime(request).engine
    listing = dedupe.list_suggestions(engine, page=page, per_page=PAGE_SIZE)
    if listing.total and not listing.items and page > listing.last_page:
        listing = dedupe.list_suggestions(engine, page=listing.last_page, per_page=PAGE_SIZE)
    first = (listing.page - 1) * listing.per_page + 1 if listing.items else 0
    context = {
        "title": "Duplicates",
        "pairs": _pairs(engine, listing.items),
        "total": listing.total,
        "page": listing.page,
        "last_page": listing.last_page,
        "first_shown": first,
        "last_shown": first + len(listing.items) - 1 if listing.items else 0,
        "merges": _merge_rows(engine),
        "notice": notice,
        "error": error,
        "scan": scan,
    }
    return render(request, "duplicates.html", context, status_code=status_code)


@router.get("")
def duplicates_page(
    request: Request,
    signed_in: StaffDep,
    notice: Text = "",
    page: Annotated[Id, Query(le=1_000_000)] = 1,
    scan: Id | None = None,
) -> Response:
    job = _scan_job(request, scan) if scan is not None else None
    if job is not None and job["status"] == "done":
        return redirect(request, "/duplicates?notice=scanned")
    return _page(request, page=page, notice=NOTICES.get(notice), scan=job)


def _scan_job(request: Request, job_id: int) -> dict[str, Any] | None:
    try:
        job = job_store.get_job(get_runtime(request).engine, job_id)
    except NotFoundError:
        return None
    return job if job["kind"] == "duplicate_scan" else None


@router.post("/scan", dependencies=CSRF)
def scan(request: Request, signed_in: StaffDep) -> Response:
    runtime = get_runtime(request)
    # A worker runs the scan (a large list takes a while); the page follows its job until it is done.
    job_id, _ = queue_scan(runtime.engine, runtime.clock)
    return redirect(request, f"/duplicates?scan={job_id}")


@router.get("/scans/{job_id}")
def scan_status(request: Request, signed_in: StaffDep, job_id: Id) -> Response:
    """The polled notice: once the scan is done, the whole page moves to the fresh list."""
    job = _scan_job(request, job_id)
    if job is None:
        return not_found(request, "No such duplicate scan.")
    if job["status"] == "done":
        return redirect(request, "/duplicates?notice=scanned")
    return render(request, "_scan_status.html", {"scan": job})


@router.post("/{suggestion_id}/merge", dependencies=CSRF)
def merge(
    request: Request,
    signed_in: StaffDep,
    suggestion_id: Id,
    survivor_id: Annotated[Id, Form()],
) -> Response:
    runtime = get_runtime(request)
    try:
        suggestion = dedupe.get_suggestion(runtime.engine, suggestion_id)
    except NotFoundError as exc:
        return _page(request, error=exc.message, status_code=404)
    pair = (suggestion.person_a_id, suggestion.person_b_id)
    if survivor_id not in pair:
        return _page(request, error="Choose which of the two people to keep.", status_code=422)
    merged_id = pair[1] if survivor_id == pair[0] else pair[0]
    reason = f"duplicate suggestion {suggestion_id}"
    try:
        with begin(request, signed_in) as uow:
            service.merge_contacts(uow, survivor_id, merged_id, reason=reason, suggestion_id=suggestion_id)
    except HeraldError as exc:
        return _page(request, error=exc.message, status_code=exc.http_status)
    return redirect(request, "/duplicates?notice=merged")


@router.post("/{suggestion_id}/dismiss", dependencies=CSRF)
def dismiss(request: Request, signed_in: StaffDep, suggestion_id: Id) -> Response:
    try:
        with begin(request, signed_in) as uow:
            dedupe.dismiss_suggestion(uow, suggestion_id)
    except NotFoundError as exc:
        return _page(request, error=exc.message, status_code=404)
    except HeraldError as exc:
        return _page(request, error=exc.message, status_code=409)
    return redirect(request, "/duplicates?notice=dismissed")


@router.post("/merges/{merge_id}/unmerge", dependencies=CSRF)
def unmerge(request: Request, signed_in: StaffDep, merge_id: Id) -> Response:
    try:
        with begin(request, signed_in) as uow:
            service.unmerge_contacts(uow, merge_id)
    except HeraldError as exc:
        return _page(request, error=exc.message, status_code=exc.http_status)
    return redirect(request, "/duplicates?notice=unmerged")
