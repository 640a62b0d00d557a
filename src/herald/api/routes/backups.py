"""Backup routes: list backups with their verification state, and take a verified backup now."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from herald.api.deps import RuntimeDep, WorkDep
from herald.backup.backup import last_verified, list_backups, take_backup

router = APIRouter(tags=["backups"])


@router.get("/backups")
def get_backups(runtime: RuntimeDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Backups newest first; `last_verified` is the newest one whose restore was verified."""
    return {"backups": list_backups(runtime.engine, limit), "last_verified": last_verified(runtime.engine)}


@router.post("/backups", status_code=201)
def post_backup(work: WorkDep) -> dict[str, Any]:
    """Take a manual backup into the backup directory, verify it, and return its row."""
    return take_backup(work.runtime, work.actor, kind="manual")
