"""Field survivorship for merges: newest non-empty value wins unless an operator locked the field."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

SCALAR_FIELDS = ("first_name", "last_name", "company", "country", "locale", "timezone", "timezone_source")


@dataclass(frozen=True, slots=True)
class PersonFields:
    values: dict[str, Any]  # SCALAR_FIELDS + attributes (dict) + tags (list)
    locked: frozenset[str]
    updated_at: dt.datetime


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def survive(survivor: PersonFields, other: PersonFields) -> dict[str, Any]:
    """The merged person's field values; the survivor keeps its id, the newer record its data."""
    newer, older = (other, survivor) if other.updated_at > survivor.updated_at else (survivor, other)
    result: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        if name in survivor.locked:
            result[name] = survivor.values.get(name)
        elif name in other.locked:
            result[name] = other.values.get(name)
        else:
            first, second = newer.values.get(name), older.values.get(name)
            result[name] = second if _empty(first) else first
    attributes = dict(older.values.get("attributes") or {})
    attributes.update({k: v for k, v in (newer.values.get("attributes") or {}).items() if not _empty(v)})
    result["attributes"] = attributes
    tags = list(survivor.values.get("tags") or [])
    result["tags"] = tags + [t for t in other.values.get("tags") or [] if t not in tags]
    result["locked_fields"] = sorted(survivor.locked | other.locked)
    return result


def apply_update(current: dict[str, Any], incoming: dict[str, Any], locked: frozenset[str]) -> dict[str, Any]:
    """Changes an incoming (newer) record makes to a person: non-empty values win unless locked."""
    changes: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        value = incoming.get(name)
        if name in locked or _empty(value) or value == current.get(name):
            continue
        changes[name] = value
    attributes = dict(current.get("attributes") or {})
    new_attrs = {k: v for k, v in (incoming.get("attributes") or {}).items() if not _empty(v)}
    if any(attributes.get(k) != v for k, v in new_attrs.items()):
        attributes.update(new_attrs)
        changes["attributes"] = attributes
    tags = list(current.get("tags") or [])
    extra = [t for t in incoming.get("tags") or [] if t not in tags]
    if extra:
        changes["tags"] = tags + extra
    return changes


FIELD_COLUMNS = (*SCALAR_FIELDS, "attributes", "tags", "locked_fields")


def person_fields(row: Any) -> dict[str, Any]:
    """The mergeable, restorable state of a person as plain JSON-safe values."""
    return {name: row[name] for name in FIELD_COLUMNS}
