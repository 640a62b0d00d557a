"""Template preview: one version (or an unsaved draft) rendered for one person, as the planner would."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from herald.contacts.store import get_person, identifiers_of
from herald.core.errors import NotFoundError
from herald.db.engine import read_connection
from herald.delivery.planner import Recipient, template_values
from herald.delivery.reasons import describe_reason
from herald.templates.checks import is_blank, lookup
from herald.templates.render import Held, TemplateSpec, VariableSpec, compile_template, render_compiled
from herald.templates.store import load_template

PERSON_FIELDS = ("first_name", "last_name", "company", "country", "locale", "timezone", "attributes")


@dataclass(frozen=True, slots=True)
class VariableState:
    """One variable a template reads, and what this person has for it."""

    path: str
    required: bool
    fallback: str | None
    state: str  # present | fallback | missing | optional (blank, read under `default` / `is defined`)
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Preview:
    template_id: str
    version: int | None  # None: an unsaved draft
    person_id: int
    parts: Mapping[str, str] = field(default_factory=dict)  # rendered, when not held
    hold_reason: str | None = None
    missing: tuple[str, ...] = ()
    fallbacks_used: tuple[str, ...] = ()
    variables: tuple[VariableState, ...] = ()

    @property
    def held(self) -> bool:
        return self.hold_reason is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "template_id": self.template_id,
            "version": self.version,
            "person_id": self.person_id,
            "status": "held" if self.held else "rendered",
            "parts": dict(self.parts),
            "hold_reason": self.hold_reason,
            "hold_reason_text": describe_reason(self.hold_reason),
            "missing_variables": list(self.missing),
            "fallbacks_used": list(self.fallbacks_used),
            "variables": [
                {"path": v.path, "required": v.required, "fallback": v.fallback, "state": v.state, "value": v.value}
                for v in self.variables
            ],
        }


def load_recipient(conn: sa.Connection, person_id: int) -> Recipient:
    """What the planner knows of a person that a template can read (consent does not change a rendering)."""
    person = get_person(conn, person_id)
    idents = identifiers_of(conn, person_id)
    return Recipient(
        person_id=person_id,
        fields={key: person[key] for key in PERSON_FIELDS},
        emails=tuple(i["value"] for i in idents if i["kind"] == "email"),
        phones=tuple(i["key"] for i in idents if i["kind"] == "phone"),
    )


def _draft(template_id: str, parts: Mapping[str, str], variables: Mapping[str, str | None]) -> TemplateSpec:
    specs = {path: VariableSpec(fallback=None if fb is None else str(fb)) for path, fb in variables.items()}
    return TemplateSpec(id=f"draft:{template_id}", version=0, parts=dict(parts), variables=specs)


def _shown(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def preview_template(
    engine: sa.Engine,
    template_id: str,
    person_id: int,
    *,
    version: int | None = None,
    parts: Mapping[str, str] | None = None,
    variables: Mapping[str, str | None] | None = None,
) -> Preview:
    """Render a stored version (latest by default) or, when `parts` is given, an unsaved draft of it.

    A draft's fallbacks are `variables` when given, else the stored version's (a new template has none).
    Raises TemplateInvalidError / TemplateUnsafeError for a broken draft, NotFoundError for an unknown
    person or template version.
    """
    with read_connection(engine) as conn:
        recipient = load_recipient(conn, person_id)
        stored: TemplateSpec | None = None
        if parts is None or variables is None or version is not None:
            try:
                stored = load_template(conn, template_id, version)
            except NotFoundError:
                if parts is None or version is not None:
                    raise  # a draft of a template not saved yet has nothing stored to fall back on
    if parts is not None:
        fallbacks = variables if variables is not None else _fallbacks(stored)
        spec = _draft(template_id, parts, fallbacks)
    else:
        assert stored is not None
        spec = stored
    compiled = compile_template(spec)
    values = template_values(recipient, {})
    result = render_compiled(compiled, values)
    needs = compiled.needs
    states = []
    for path in sorted(needs.variables):
        value = lookup(values, path)
        fallback = needs.fallbacks.get(path)
        required = path in needs.required
        if not is_blank(value):
            state, shown = "present", _shown(value)
        elif fallback is not None:
            state, shown = "fallback", fallback
        else:
            state, shown = ("missing" if required else "optional"), None
        states.append(VariableState(path, required, fallback, state, shown))
    preview = Preview(template_id, None if parts is not None else spec.version, person_id, variables=tuple(states))
    if isinstance(result, Held):
        missing = result.variables or tuple(s.path for s in states if s.state == "missing")
        return replace(preview, hold_reason=result.reason, missing=missing)
    return replace(preview, parts=result.parts, fallbacks_used=result.fallbacks_used)


def _fallbacks(spec: TemplateSpec | None) -> dict[str, str | None]:
    return {} if spec is None else {path: var.fallback for path, var in spec.variables.items()}
