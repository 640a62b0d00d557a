"""Backup routes: list backups with their verification state."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter

from herald.api.deps import RuntimeDep
from herald.db.tables import backups

router = APIRouter(tags=["backups"])


@router.get("/backups")
def list_backups(runtime: RuntimeDep) -> dict[str, Any]:
    with runtime.engine.connect() as conn:
        rows = conn.execute(sa.select(backups).order_by(backups.c.id.desc())).mappings().all()
    return {"backups": [dict(r) for r in rows]}
