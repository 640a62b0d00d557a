"""Export & backups page: download contact exports (audited), take a verified backup, list backups."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import FileResponse, Response

from herald.auth.audit import record_audit
from herald.backup.backup import last_verified, list_backups, take_backup
from herald.contacts import export
from herald.core.inputs import Count, Text
from herald.web.contacts_views import StaffDep
from herald.web.deps import CSRF, client_ip, get_runtime
from herald.web.render import SECURITY_HEADERS, redirect, render

router = APIRouter(prefix="/data")

EXPORTS = {
    "people": ("contacts.csv", export.export_people),
    "sources": ("contacts-sources.csv", export.export_sources),
}
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
    if kind not in EXPORTS:
        return render(request, "error.html", {"title": "Not found", "message": "No such export."}, status_code=404)
    runtime = get_runtime(request)
    name, write = EXPORTS[kind]
    handle = tempfile.NamedTemporaryFile(prefix="herald-export-", suffix=".csv", delete=False)  # noqa: SIM115
    handle.close()
    path = Path(handle.name)
    rows = write(runtime.engine, path)
    # Exports carry personal data out of Herald, so each download is on the record.
    record_audit(
        runtime.engine,
        runtime.clock,
        "export.created",
        actor=signed_in.user.actor(client_ip(request)),
        target=name,
        details={"kind": kind, "rows": rows},
    )
    background.add_task(path.unlink, missing_ok=True)
    headers = {"Cache-Control": SECURITY_HEADERS["Cache-Control"], "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type="text/csv", filename=name, background=background, headers=headers)


@router.post("/backups", dependencies=CSRF)
def run_backup(request: Request, signed_in: StaffDep) -> Response:
    runtime = get_runtime(request)
    row = take_backup(runtime, kind="manual")
    record_audit(
        runtime.engine,
        runtime.clock,
        "backup.created",
        actor=signed_in.user.actor(client_ip(request)),
        target=Path(row["path"]).name,
        target_id=row["id"],
        details={"status": row["status"], "size_bytes": row["size_bytes"]},
    )
    if row["status"] == "verified":
        return redirect(request, "/data?notice=verified")
    return redirect(request, f"/data?failed={row['id']}")
