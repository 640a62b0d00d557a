"""Import routes: upload a file (returns a batch id at once), poll progress, rejects, undo."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from herald.api.deps import RuntimeDep, WorkDep
from herald.api.errors import error_responses
from herald.contacts import importing, undo
from herald.contacts.export import neutralise
from herald.contacts.importers import FORMATS
from herald.core.errors import InvalidInputError
from herald.core.inputs import Id, Text, refuse_nul
from herald.jobs.imports import queue_import

router = APIRouter(tags=["imports"])
ISSUES_LISTED = 100  # per kind in GET /imports/{id}; rejects.csv has them all


@router.post("/imports", status_code=202)
async def upload_import(
    work: WorkDep,
    file: UploadFile = File(..., description="CSV export (generic, Mailchimp, HubSpot, Constant Contact)"),
    format: Annotated[Text, Form()] = "auto",
    default_region: Annotated[Text | None, Form(min_length=2, max_length=2)] = None,
) -> dict[str, Any]:
    if format not in FORMATS:
        raise InvalidInputError(f"Unknown format {format!r}; use one of {', '.join(FORMATS)}.", field="format")
    runtime = work.runtime
    region = (default_region or runtime.settings.default_region).upper()
    name = Path(refuse_nul(file.filename or "upload.csv", "file")).name
    with work.begin() as uow:
        batch_id = importing.create_batch(uow, name, format, region)
    folder = runtime.settings.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"import-{batch_id}-{name}"
    # The body limit middleware already refused anything over HERALD_MAX_UPLOAD_BYTES with 413.
    with path.open("wb") as out:
        while chunk := await file.read(1 << 20):
            out.write(chunk)
    # The batch and its job are durable before we answer; a worker runs it (resuming it after a crash).
    job_id = queue_import(
        runtime.engine,
        runtime.clock,
        path,
        batch_id=batch_id,
        fmt=format,
        default_region=region,
        file_name=name,
        rejects_dir=folder,
        actor=work.actor,
    )
    return {
        "id": batch_id,
        "status": "pending",
        "progress_url": f"/api/imports/{batch_id}",
        "job_id": job_id,
        "job_url": f"/api/jobs/{job_id}",
    }


@router.get("/imports/{batch_id}", responses=error_responses(404))
def get_import(batch_id: Id, runtime: RuntimeDep) -> dict[str, Any]:
    """Progress and counts; a failed batch has `error: {code, message}`; the first rejects and warnings."""
    batch = importing.get_batch(runtime.engine, batch_id)
    for kind, key in (("reject", "rejects"), ("warning", "warnings")):
        issues = importing.batch_issues(runtime.engine, batch_id, kind=kind, limit=ISSUES_LISTED)
        batch[key] = [{"row": i.row_number, "reason": i.reason, "field": i.field, "message": i.message} for i in issues]
    batch["rejects_url"] = f"/api/imports/{batch_id}/rejects.csv"
    batch["job_url"] = f"/api/jobs/{batch['job_id']}" if batch.get("job_id") else None
    return batch


@router.get("/imports/{batch_id}/rejects.csv", responses=error_responses(404))
def import_rejects(batch_id: Id, runtime: RuntimeDep) -> Response:
    """Every rejected row and every warning, in file order; `kind` says which."""
    importing.get_batch(runtime.engine, batch_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(importing.ISSUE_COLUMNS)
    for r in importing.batch_issues(runtime.engine, batch_id):
        writer.writerow([r.row_number, r.kind, r.reason, r.field or "", neutralise(r.message)])
    return Response(buffer.getvalue(), media_type="text/csv")


@router.post("/imports/{batch_id}/undo", responses=error_responses(404, 409))
def undo_import(batch_id: Id, work: WorkDep) -> dict[str, Any]:
    with work.begin() as uow:
        return undo.undo_import(uow, batch_id)
