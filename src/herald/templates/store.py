"""Stored templates: create immutable numbered versions, list them, load one for planning."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from herald.core.clock import Clock
from herald.core.errors import NotFoundError
from herald.db.templates_tables import message_templates
from herald.templates.render import TemplateSpec, VariableSpec, compile_template


def _spec(template_id: str, version: int, parts: Mapping[str, str], variables: Mapping[str, Any]) -> TemplateSpec:
    specs = {path: VariableSpec(fallback=None if fb is None else str(fb)) for path, fb in variables.items()}
    return TemplateSpec(id=template_id, version=version, parts=dict(parts), variables=specs)


def create_template(
    engine: sa.Engine, clock: Clock, template_id: str, parts: Mapping[str, str], variables: Mapping[str, str | None]
) -> dict[str, Any]:
    """Store a new immutable version (compiled and vetted first, so a broken template is refused now)."""
    now: dt.datetime = clock.now()
    with engine.begin() as conn:
        latest = conn.execute(
            sa.select(sa.func.max(message_templates.c.version)).where(message_templates.c.template_id == template_id)
        ).scalar()
        version = int(latest or 0) + 1
        compile_template(_spec(template_id, version, parts, variables))
        conn.execute(
            message_templates.insert().values(
                template_id=template_id, version=version, parts=dict(parts), variables=dict(variables), created_at=now
            )
        )
    return {"id": template_id, "version": version, "parts": dict(parts), "variables": dict(variables)}


def template_versions(engine: sa.Engine, template_id: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(message_templates)
            .where(message_templates.c.template_id == template_id)
            .order_by(message_templates.c.version)
        ).mappings()
        found = [{k: r[k] for k in ("version", "parts", "variables", "created_at")} for r in rows]
    if not found:
        raise NotFoundError(f"No template {template_id!r}.", id=template_id)
    return found


def load_template(conn: sa.Connection, template_id: str, version: int | None) -> TemplateSpec:
    """The given version of a template, or its latest when `version` is None, ready to render."""
    query = sa.select(message_templates).where(message_templates.c.template_id == template_id)
    if version is not None:
        query = query.where(message_templates.c.version == version)
    row = conn.execute(query.order_by(message_templates.c.version.desc()).limit(1)).mappings().first()
    if row is None:
        raise NotFoundError(f"No template {template_id!r} version {version or 'latest'}.", id=template_id)
    return _spec(template_id, row["version"], row["parts"], row["variables"])
