"""Render ledger rows planned with a template version and variables (no content) when the worker claims them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.core.channels import PARTS
from herald.core.errors import HeraldError
from herald.templates.render import CompiledTemplate, Held, TemplateSpec, compile_template, render_compiled
from herald.templates.store import load_template

Content = dict[str, dict[str, Any]]


def needs_render(row: Mapping[str, Any]) -> bool:
    """A row a campaign planned: a template reference and the person's variables, no rendered content."""
    return not row["content"] and row.get("variables") is not None and row.get("template_id") is not None


@dataclass(frozen=True, slots=True)
class Unrenderable:
    """The template version cannot be used at all (gone, invalid or refused): every row using it is held."""

    reason: str


class TemplateCache:
    """Compiled templates per (id, version, channels) for one database; a version never changes once stored.

    One per Deliverer (so per runtime and database): a process serving two databases in tests keeps two."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, int, tuple[str, ...]], CompiledTemplate | Unrenderable] = {}
        self._specs: dict[tuple[str, int], TemplateSpec | Unrenderable] = {}

    def compiled(
        self, conn: sa.Connection, template_id: str, version: int, channels: Sequence[str]
    ) -> CompiledTemplate | Unrenderable | None:
        """None when the plan's channels use no part of the template (a webhook-only plan, say)."""
        key = (template_id, version, tuple(channels))
        found = self._compiled.get(key)
        if found is None:
            spec = self._spec(conn, template_id, version)
            found = spec if isinstance(spec, Unrenderable) else _compile(spec, channels)
            if found is None:
                return None
            self._compiled[key] = found
        return found

    def compiled_versions(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """What is compiled so far: (template id, version, plan channels)."""
        return list(self._compiled)

    def _spec(self, conn: sa.Connection, template_id: str, version: int) -> TemplateSpec | Unrenderable:
        key = (template_id, version)
        spec = self._specs.get(key)
        if spec is None:
            try:
                spec = load_template(conn, template_id, version)
            except HeraldError as exc:
                spec = Unrenderable(f"template_unavailable:{exc.code}")  # :not_found
            self._specs[key] = spec
        return spec


def _compile(spec: TemplateSpec, channels: Sequence[str]) -> CompiledTemplate | Unrenderable | None:
    # Only the parts of the plan's channels, as the planner does: a variable used only by a channel
    # that is not in the plan holds nothing.
    wanted = {PARTS[c][f] for c in channels if c in PARTS for f in PARTS[c]}
    parts = {name: source for name, source in spec.parts.items() if name in wanted}
    if not parts:
        return None
    try:
        return compile_template(TemplateSpec(id=spec.id, version=spec.version, parts=parts, variables=spec.variables))
    except HeraldError as exc:  # template_invalid | template_unsafe: stored before a rule tightened
        return Unrenderable(f"template_unavailable:{exc.code}")


def render_row(conn: sa.Connection, row: Mapping[str, Any], cache: TemplateCache) -> Content | Held:
    """The row's content per channel of its plan, rendered strictly from its template version and variables.

    Deterministic (immutable version, stored variables), so the content is never written back: a re-claim
    or the message page renders the same bytes again."""
    channels: Sequence[str] = row["channels"]
    compiled = cache.compiled(conn, str(row["template_id"]), int(row["template_version"]), channels)
    if isinstance(compiled, Unrenderable):
        return Held(compiled.reason)
    try:
        rendered = render_compiled(compiled, row["variables"] or {}) if compiled is not None else None
    except HeraldError as exc:  # the sandbox refused something at render time: hold, never stop the batch
        return Held(f"template_unavailable:{exc.code}")
    if isinstance(rendered, Held):
        return rendered
    parts = rendered.parts if rendered is not None else {}
    return {c: {f: parts[p] for f, p in PARTS[c].items() if p in parts} for c in channels if c in PARTS}
