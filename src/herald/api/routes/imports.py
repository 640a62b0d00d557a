"""Import routes: upload a file (returns a batch id at once), poll progress, rejects, undo."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from herald.api.deps import RuntimeDep
from herald.contacts import importing, undo
from herald.contacts.export import neutralise
from herald.contacts.importers import FORMATS
from herald.core.errors import InvalidInputError

router = APIRouter(tags=["imports"])
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
ISSUES_LISTED = 100  # per kind in GET /imports/{id}; rejects.csv has them all


@router.post("/imports", status_code=202)
async def upload_import(
    runtime: RuntimeDep,
    file: UploadFile = File(..., description="CSV export (generic, Mailchimp, HubSpot, Constant Contact)"),
    format: str = Form("auto"),
    default_region: str | None = Form(None, min_length=2, max_length=2),
) -> dict[str, Any]:
    if format not in FORMATS:
        raise InvalidInputError(f"Unknown format {format!r}; use one of {', '.join(FORMATS)}.", field="format")
    region = (default_region or runtime.settings.default_region).upper()
    name = Path(file.filename or "upload.csv").name
    batch_id = importing.create_batch(runtime.engine, runtime.clock, name, format, region)
    folder = runtime.settings.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"import-{batch_id}-{name}"
    try:
        await _save_upload(file, path)
    except InvalidInputError as exc:
        path.unlink(missing_ok=True)
        importing.fail_batch(runtime.engine, runtime.clock, batch_id, exc)  # never left pending
        raise
    # The batch is durable before we answer; the work runs beside the request and reports progress.
    importing.start_import(
        runtime.engine,
        runtime.clock,
        path,
        batch_id=batch_id,
        fmt=format,
        default_region=region,
        file_name=name,
        rejects_dir=folder,
        actor="api",
    )
    return {"id": batch_id, "status": "pending", "progress_url": f"/api/imports/{batch_id}"}


async def _save_upload(file: UploadFile, path: Path) -> None:
    size = 0
    with path.open("wb") as out:
        while chunk := await file.read(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise InvalidInputError("The file is larger than 512 MiB.", field="file")
            out.write(chunk)


@router.get("/imports/{batch_id}")
def get_import(batch_id: int, runtime: RuntimeDep) -> dict[str, Any]:
    """Progress and counts; a failed batch has `error: {code, message}`; the first rejects and warnings."""
    batch = importing.get_batch(runtime.engine, batch_id)
    for kind, key in (("reject", "rejects"), ("warning", "warnings")):
        issues = importing.batch_issues(runtime.engine, batch_id, kind=kind, limit=ISSUES_LISTED)
        batch[key] = [{"row": i.row_number, "reason": i.reason, "field": i.field, "message": i.message} for i in issues]
    batch["rejects_url"] = f"/api/imports/{batch_id}/rejects.csv"
    return batch


@router.get("/imports/{batch_id}/rejects.csv")
def import_rejects(batch_id: int, runtime: RuntimeDep) -> Response:
    """Every rejected row and every warning, in file order; `kind` says which."""
    importing.get_batch(runtime.engine, batch_id)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(importing.ISSUE_COLUMNS)
    for r in importing.batch_issues(runtime.engine, batch_id):
        writer.writerow([r.row_number, r.kind, r.reason, r.field or "", neutralise(r.message)])
    return Response(buffer.getvalue(), media_type="text/csv")


@router.post("/imports/{batch_id}/undo")
def undo_import(batch_id: int, runtime: RuntimeDep) -> dict[str, Any]:
    return undo.undo_import(runtime.engine, runtime.clock, batch_id, actor="api")
