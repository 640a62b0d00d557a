"""Duplicate suggestion routes: a page of pairs with the total, a scan, and dismiss."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query

from herald.api.deps import RuntimeDep, WorkDep
from herald.api.errors import error_responses
from herald.contacts import dedupe
from herald.contacts.dedupe import Suggestion
from herald.contacts.evidence import describe
from herald.core.inputs import Id
from herald.jobs.scans import queue_scan

router = APIRouter(tags=["duplicates"])


def suggestion_body(s: Suggestion) -> dict[str, Any]:
    return {
        "id": s.id,
        "status": s.status,
        "score": s.score,
        "person_a": {"id": s.person_a_id, "name": s.person_a_name},
        "person_b": {"id": s.person_b_id, "name": s.person_b_name},
        "evidence": [e.as_dict() | {"text": describe(e)} for e in s.evidence],
        "summary": s.reason,
        "batch_id": s.batch_id,
        "created_at": s.created_at,
        "decided_at": s.decided_at,
        "decided_by": s.decided_by,
    }


@router.get("/duplicates")
def list_duplicates(
    runtime: RuntimeDep,
    page: int = Query(1, ge=1, le=1_000_000),
    per_page: int = Query(50, ge=1, le=dedupe.MAX_PER_PAGE),
    status: Literal["open", "dismissed", "merged"] = "open",
) -> dict[str, Any]:
    """Stored suggestions, strongest first; `total` counts every suggestion with that status."""
    listing = dedupe.list_suggestions(runtime.engine, status, page=page, per_page=per_page)
    return {
        "total": listing.total,
        "page": listing.page,
        "per_page": listing.per_page,
        "last_page": listing.last_page,
        "suggestions": [suggestion_body(s) for s in listing.items],
    }


@router.post("/duplicates/scan", status_code=202)
def scan_duplicates(runtime: RuntimeDep, threshold: float = Query(88.0, ge=50, le=100)) -> dict[str, Any]:
    """Queue a scan for new pairs with evidence (open suggestions that lost theirs are withdrawn).

    A worker runs it; `GET /api/jobs/{job_id}` shows its progress and, once done, `result`: new, refreshed,
    withdrawn and open_total. While a scan is queued or running, that scan is returned (`queued: false`)."""
    job_id, queued = queue_scan(runtime.engine, runtime.clock, threshold)
    return {"job_id": job_id, "queued": queued, "progress_url": f"/api/jobs/{job_id}"}


@router.get("/duplicates/{suggestion_id}", responses=error_responses(404))
def get_duplicate(suggestion_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    return suggestion_body(dedupe.get_suggestion(runtime.engine, suggestion_id))


@router.post("/duplicates/{suggestion_id}/dismiss", responses=error_responses(404, 409))
def dismiss_duplicate(suggestion_id: Id, work: WorkDep) -> dict[str, Any]:
    """The two are different people: the pair is not suggested again by any scan."""
    with work.begin() as uow:
        return suggestion_body(dedupe.dismiss_suggestion(uow, suggestion_id))
