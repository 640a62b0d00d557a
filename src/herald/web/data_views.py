"""Export & backups page: download contact exports (audited), take a verified backup, list backups."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import FileResponse, Response

from herald.backup.backup import last_verified, list_backups, take_backup
from herald.contacts import export
from herald.core.inputs import Count, Text
from herald.web.contacts_views import StaffDep
from herald.web.deps import CSRF, get_runtime, operator
from herald.web.render import SECURITY_HEADERS, redirect, render

router = APIRouter(prefix="/data")

NOTICES = {
    "verified": "Backup taken and verified: it was restored into a scratch database and every table matched.",
}


def _backup_rows(backups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        row
        | {
            "file_name": Path(row["path"]).name,
            "tables": sorted((row["table_counts"] or {}).items()),
            "rows": sum((row["table_counts"] or {}).values()),
        }
        for row in backups
    ]


@router.get("")
def data_page(request: Request, signed_in: StaffDep, notice: Text = "", failed: Count | None = None) -> Response:
    runtime = get_runtime(request)
    newest_verified = last_verified(runtime.engine)
    context = {
        "title": "Export & backups",
        "backups": _backup_rows(list_backups(runtime.engine, limit=50)),
        "last_verified_id": newest_verified["id"] if newest_verified else None,
        "last_verified": newest_verified,
        "backup_dir": runtime.settings.resolved_backup_dir,
        "notice": NOTICES.get(notice),
        "failed_backup": failed,
    }
    return render(request, "data.html", context)


@router.get("/export/{kind}.csv")
def download_export(request: Request, signed_in: StaffDep, kind: Text, background: BackgroundTasks) -> Response:
    if kind not in export.EXPORT_FILES:
        return render(request, "error.html", {"title": "Not found", "message": "No such export."}, status_code=404)
    runtime = get_runtime(request)
    name = export.EXPORT_FILES[kind]
    handle = tempfile.NamedTemporaryFile(prefix="herald-export-", suffix=".csv", delete=False)  # noqa: SIM115
    handle.close()
    path = Path(handle.name)
    # Exports carry personal data out of Herald: the service puts each one on the record.
    try:
        export.export_contacts(runtime.engine, runtime.clock, operator(request, signed_in), kind, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    background.add_task(path.unlink, missing_ok=True)
    headers = {"Cache-Control": SECURITY_HEADERS["Cache-Control"], "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type="text/csv", filename=name, background=background, headers=headers)


@router.post("/backups", dependencies=CSRF)
def run_backup(request: Request, signed_in: StaffDep) -> Response:
    runtime = get_runtime(request)
    row = take_backup(runtime, operator(request, signed_in), kind="manual")
    if row["status"] == "verified":
        return redirect(request, "/data?notice=verified")
    return redirect(request, f"/data?failed={row['id']}")
