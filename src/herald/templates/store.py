"""Stored templates: save immutable numbered versions, list them, load one for planning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from herald.core.actor import SYSTEM
from herald.core.clock import Clock
from herald.core.errors import NotFoundError
from herald.db.engine import read_connection
from herald.db.templates_tables import message_templates
from herald.db.unit_of_work import UnitOfWork, unit_of_work
from herald.templates.render import TemplateSpec, VariableSpec, compile_template


def _spec(template_id: str, version: int, parts: Mapping[str, str], variables: Mapping[str, Any]) -> TemplateSpec:
    specs = {path: VariableSpec(fallback=None if fb is None else str(fb)) for path, fb in variables.items()}
    return TemplateSpec(id=template_id, version=version, parts=dict(parts), variables=specs)


def save_version(
    uow: UnitOfWork, template_id: str, parts: Mapping[str, str], variables: Mapping[str, str | None]
) -> dict[str, Any]:
    """Store a new immutable version (compiled and vetted first, so a broken template is refused now)."""
    latest = uow.conn.execute(
        sa.select(sa.func.max(message_templates.c.version)).where(message_templates.c.template_id == template_id)
    ).scalar()
    version = int(latest or 0) + 1
    compile_template(_spec(template_id, version, parts, variables))
    uow.conn.execute(
        message_templates.insert().values(
            template_id=template_id, version=version, parts=dict(parts), variables=dict(variables), created_at=uow.now
        )
    )
    uow.audit(
        "templates.version_saved",
        target=f"template {template_id}",
        details={"version": version, "parts": sorted(parts)},
    )
    return {"id": template_id, "version": version, "parts": dict(parts), "variables": dict(variables)}


def create_template(
    engine: sa.Engine, clock: Clock, template_id: str, parts: Mapping[str, str], variables: Mapping[str, str | None]
) -> dict[str, Any]:
    """`save_version` as the system (seeding and benchmarks); entry points build a unit of work with their actor."""
    with unit_of_work(engine, clock, SYSTEM) as uow:
        return save_version(uow, template_id, parts, variables)


def list_templates(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every stored template with its latest version (parts, fallbacks) and how many versions it has."""
    latest = (
        sa.select(
            message_templates.c.template_id,
            sa.func.max(message_templates.c.version).label("latest"),
            sa.func.min(message_templates.c.created_at).label("created_at"),
        )
        .group_by(message_templates.c.template_id)
        .subquery()
    )
    query = (
        sa.select(message_templates, latest.c.created_at.label("first_created_at"))
        .join(
            latest,
            sa.and_(
                message_templates.c.template_id == latest.c.template_id,
                message_templates.c.version == latest.c.latest,
            ),
        )
        .order_by(message_templates.c.template_id)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(query).mappings().all()
    return [
        {
            "id": row["template_id"],
            "latest_version": row["version"],
            "versions": row["version"],  # versions are numbered 1…n and never deleted
            "parts": dict(row["parts"]),
            "variables": dict(row["variables"]),
            "created_at": row["first_created_at"],
            "updated_at": row["created_at"],
        }
        for row in rows
    ]


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
