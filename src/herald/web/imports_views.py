"""Import pages: upload a file, watch the batch's progress (htmx polling), download rejects, undo."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from herald.contacts import importing, undo
from herald.contacts.importers import FORMATS
from herald.core.errors import ConflictError, HeraldError, InvalidInputError, NotFoundError
from herald.core.inputs import NUL, Id, Text
from herald.db.engine import Engine
from herald.jobs.imports import queue_import
from herald.web.contacts_views import StaffDep, not_found
from herald.web.deps import CSRF, begin, get_runtime, operator
from herald.web.render import FormErrors, redirect, render

router = APIRouter(prefix="/imports")

FINISHED = frozenset({"done", "failed", "undone"})
FORMAT_LABELS = {
    "auto": "Detect from the header",
    "csv": "Generic CSV",
    "mailchimp": "Mailchimp audience export",
    "hubspot": "HubSpot contacts export",
    "constant-contact": "Constant Contact export",
}
COUNT_LABELS = (
    ("created", "Created"),
    ("updated", "Updated"),
    ("unchanged", "Unchanged"),
    ("deduplicated", "Deduplicated"),
    ("merged", "Merged"),
    ("suggested", "Suggested"),
    ("rejected", "Rejected"),
    ("warned", "Warned"),
    ("suppressed", "Suppressed"),
)
ISSUES_SHOWN = 50  # per kind on the page; the download has them all
NOTICES = {"undone": "The import was undone: the people it created are gone and the ones it changed are restored."}


def _form_page(
    request: Request, *, errors: FormErrors | None = None, values: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    runtime = get_runtime(request)
    context = {
        "title": "Imports",
        "formats": [(fmt, FORMAT_LABELS.get(fmt, fmt)) for fmt in FORMATS],
        "batches": importing.list_batches(runtime.engine, limit=20),
        "default_region": runtime.settings.default_region,
        "errors": errors or FormErrors(),
        "values": values or {"format": "auto", "region": runtime.settings.default_region},
    }
    return render(request, "imports.html", context, status_code=status_code)


@router.get("")
def imports_page(request: Request, signed_in: StaffDep) -> Response:
    return _form_page(request)


def _region(value: str, fallback: str) -> str:
    region = (value.strip() or fallback).upper()
    if len(region) != 2 or not region.isalpha():
        raise InvalidInputError("Use a two-letter country code such as US or DE.", field="region")
    return region


async def _save_upload(file: UploadFile, path: Path) -> None:
    # The body limit middleware already refused anything over HERALD_MAX_UPLOAD_BYTES with 413.
    with path.open("wb") as out:
        while chunk := await file.read(1 << 20):
            out.write(chunk)


@router.post("", dependencies=CSRF)
async def start_import(
    request: Request,
    signed_in: StaffDep,
    file: Annotated[UploadFile | None, File()] = None,
    format: Annotated[Text, Form()] = "auto",
    region: Annotated[Text, Form()] = "",
) -> Response:
    runtime = get_runtime(request)
    values = {"format": format, "region": region}
    errors = FormErrors()
    if file is None or not file.filename:
        errors.put("file", "Choose a CSV file to import.")
    elif NUL in file.filename:
        errors.put("file", "The file name must not contain NUL characters.")
    if format not in FORMATS:
        errors.put("format", "Choose one of the listed formats.")
    try:
        chosen_region = _region(region, runtime.settings.default_region)
    except HeraldError as exc:
        errors.add(exc)
    if errors or file is None:
        return _form_page(request, errors=errors, values=values, status_code=422)
    name = Path(file.filename or "upload.csv").name
    with begin(request, signed_in) as uow:
        batch_id = importing.create_batch(uow, name, format, chosen_region)
    folder = runtime.settings.data_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"import-{batch_id}-{name}"
    try:
        await _save_upload(file, path)
    except HeraldError as exc:
        path.unlink(missing_ok=True)
        importing.fail_batch(runtime.engine, runtime.clock, batch_id, exc)
        return _form_page(request, errors=FormErrors().add(exc, "file"), values=values, status_code=exc.http_status)
    # The batch and its job are durable before we answer; a worker runs it and reports progress on the row.
    queue_import(
        runtime.engine,
        runtime.clock,
        path,
        batch_id=batch_id,
        fmt=format,
        default_region=chosen_region,
        file_name=name,
        rejects_dir=runtime.settings.data_dir / "imports",
        actor=operator(request, signed_in),
    )
    return redirect(request, f"/imports/{batch_id}")


def _batch_context(engine: Engine, batch: dict[str, Any]) -> dict[str, Any]:
    counts = batch.get("counts") or {}
    finished = batch["status"] in FINISHED
    issues = {
        kind: importing.batch_issues(engine, batch["id"], kind=kind, limit=ISSUES_SHOWN) if finished else []
        for kind in ("reject", "warning")
    }
    return {
        "batch": batch,
        "finished": finished,
        "encoding": importing.encoding_label(batch["encoding"], batch["encoding_guessed"]),
        "counts": [(key, label, int(counts.get(key, 0))) for key, label in COUNT_LABELS],
        "count": {key: int(counts.get(key, 0)) for key, _ in COUNT_LABELS},
        "opt_out_kept": int(counts.get("opt_out_kept", 0)),
        "rejects": issues["reject"],
        "warnings": issues["warning"],
        "issues_shown": ISSUES_SHOWN,
    }


@router.get("/{batch_id}")
def batch_page(request: Request, signed_in: StaffDep, batch_id: Id, notice: Text = "") -> Response:
    engine = get_runtime(request).engine
    try:
        batch = importing.get_batch(engine, batch_id)
    except NotFoundError:
        return not_found(request, f"There is no import with id {batch_id}.")
    context = {"title": f"Import {batch_id}", "notice": NOTICES.get(notice), **_batch_context(engine, batch)}
    return render(request, "import_batch.html", context)


@router.get("/{batch_id}/progress")
def batch_progress(request: Request, signed_in: StaffDep, batch_id: Id) -> Response:
    """The progress fragment htmx polls; once the batch is finished it comes back without a trigger."""
    engine = get_runtime(request).engine
    try:
        batch = importing.get_batch(engine, batch_id)
    except NotFoundError:
        return not_found(request, f"There is no import with id {batch_id}.")
    return render(request, "_import_progress.html", _batch_context(engine, batch))


@router.get("/{batch_id}/rejects.csv")
def batch_rejects(request: Request, signed_in: StaffDep, batch_id: Id) -> Response:
    engine = get_runtime(request).engine
    try:
        importing.get_batch(engine, batch_id)
    except NotFoundError:
        return not_found(request, f"There is no import with id {batch_id}.")
    # write_rejects neutralises formula cells, so the file is safe to open in a spreadsheet.
    with tempfile.TemporaryDirectory(prefix="herald-rejects-") as folder:
        path = importing.write_rejects(importing.batch_issues(engine, batch_id), Path(folder), batch_id)
        content = path.read_bytes()
    disposition = f'attachment; filename="import-{batch_id}-rejects.csv"'
    return Response(content, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})


@router.post("/{batch_id}/undo", dependencies=CSRF)
def undo_batch(request: Request, signed_in: StaffDep, batch_id: Id) -> Response:
    runtime = get_runtime(request)
    try:
        if importing.get_batch(runtime.engine, batch_id)["status"] != "done":
            raise ConflictError("Only a finished import can be undone.", id=batch_id)
        with begin(request, signed_in) as uow:
            undo.undo_import(uow, batch_id)
    except NotFoundError:
        return not_found(request, f"There is no import with id {batch_id}.")
    except HeraldError as exc:
        if request.headers.get("HX-Request"):
            return render(request, "_alert_error.html", {"message": exc.message})
        batch = importing.get_batch(runtime.engine, batch_id)
        context = {"title": f"Import {batch_id}", "undo_error": exc.message, **_batch_context(runtime.engine, batch)}
        return render(request, "import_batch.html", context, status_code=exc.http_status)
    return redirect(request, f"/imports/{batch_id}?notice=undone")
