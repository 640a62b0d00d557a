"""A segment's filter tree: parse and bound it, then compile it to one SQL select of matching people.

A definition is a tree of groups — `{"all": [...]}`, `{"any": [...]}`, `{"not": {...}}` — over typed
conditions (`{"type": "attribute", ...}`, see docs/segments.md). The people-side SQL lives in
`contacts.audience` and the consent side in `consent.audience` (each slice compiles against its own
tables); this module only walks the tree. Every leaf is two-valued, so `not` is an exact complement.

Extension point, engagement (tracking arrives later): add a condition model to `CONDITION_MODELS`
(e.g. `{"type": "engagement", "event": "opened", "within_days": 30}`) and its compiler to `_COMPILERS`,
calling the tracking slice's own "person ids that did X since T" select through
`contacts.audience.person_in`, as consent does. Nothing else changes: parsing, bounds, paths in errors,
storage and the API take the union as it is.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from herald.consent import audience as consent_audience
from herald.consent.policy import CHANNELS as CONSENT_CHANNELS
from herald.consent.policy import PURPOSES
from herald.contacts import audience as people
from herald.core.errors import InvalidInputError
from herald.core.inputs import Id

# Bounds: a definition is operator input stored and compiled on every count; keep it small enough that
# no definition can make a statement the database refuses (depth) or that takes long to compile (size).
MAX_DEPTH = 8
MAX_NODES = 200
MAX_LIST = 500

GROUPS = ("all", "any", "not")
ATTRIBUTE_OPS = ("equals", "not_equals", "contains", "exists", "missing", "greater", "less")

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r'^[^"\\\x00]+$')]
Word = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


class _Condition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class AttributeCondition(_Condition):
    """A custom attribute (people.attributes); numbers compare as numbers, "42" equals 42."""

    type: Literal["attribute"]
    name: Name
    op: Literal["equals", "not_equals", "contains", "exists", "missing", "greater", "less"]
    value: StrictStr | StrictInt | StrictFloat | None = Field(None, description="not for exists / missing")

    @field_validator("value")
    @classmethod
    def _bounded(cls, value: str | float | None) -> str | float | None:
        if isinstance(value, str) and (len(value) > 1000 or "\x00" in value):
            raise ValueError("a value is at most 1000 characters, without NUL")
        return value

    @model_validator(mode="after")
    def _value_fits_op(self) -> AttributeCondition:
        if self.op in ("exists", "missing"):
            if self.value is not None:
                raise ValueError(f"{self.op} takes no value")
        elif self.value is None:
            raise ValueError(f"{self.op} needs a value")
        elif self.op == "contains" and not isinstance(self.value, str):
            raise ValueError("contains needs a text value")
        elif self.op in ("greater", "less"):
            number = _as_number(self.value)
            if number is None:
                raise ValueError(f"{self.op} needs a number")
            object.__setattr__(self, "value", number)
        return self


def _as_number(value: str | float) -> float | None:
    if isinstance(value, int | float):
        return value
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None  # no NaN, no infinity


class TagCondition(_Condition):
    type: Literal["tag"]
    op: Literal["has", "lacks"] = "has"
    tag: Word


class IdentifierCondition(_Condition):
    type: Literal["identifier"]
    kind: Literal["email", "phone", "handle"]
    op: Literal["present", "absent"] = "present"


class CountryCondition(_Condition):
    type: Literal["country"]
    in_: list[Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]] = Field(..., alias="in", min_length=1, max_length=300)

    @field_validator("in_")
    @classmethod
    def _upper(cls, codes: list[str]) -> list[str]:
        return sorted({code.upper() for code in codes})


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class TimezoneCondition(_Condition):
    """The person's stored time zone is one of `in`; `unknown` also takes people with no zone stored."""

    type: Literal["timezone"]
    in_: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, alias="in", max_length=MAX_LIST)
    unknown: bool = False

    @field_validator("in_")
    @classmethod
    def _known_zones(cls, zones: list[str]) -> list[str]:
        for zone in zones:
            if zone not in _zones():
                raise ValueError(f"unknown time zone {zone!r}")
        return sorted(set(zones))

    @model_validator(mode="after")
    def _something(self) -> TimezoneCondition:
        if not self.in_ and not self.unknown:
            raise ValueError('name zones in "in", or set "unknown": true')
        return self


class ConsentCondition(_Condition):
    """Allowed now on `channel` for `purpose`, exactly as consent/policy.py's verdict (opt-outs sticky)."""

    type: Literal["consent"]
    channel: str
    purpose: Literal["marketing", "transactional"] = "marketing"
    allowed: bool = True

    @field_validator("channel")
    @classmethod
    def _consent_channel(cls, channel: str) -> str:
        if channel not in CONSENT_CHANNELS:
            raise ValueError(f"consent is recorded for {', '.join(CONSENT_CHANNELS)}")
        return channel


class CreatedCondition(_Condition):
    """Created before / at-or-after an instant, or within the last `days` days (by the Clock)."""

    type: Literal["created"]
    op: Literal["before", "after", "within_days"]
    at: AwareDatetime | None = None
    days: int | None = Field(None, ge=1, le=36500)

    @model_validator(mode="after")
    def _operand(self) -> CreatedCondition:
        if self.op == "within_days":
            if self.days is None or self.at is not None:
                raise ValueError('within_days takes "days" (and no "at")')
        elif self.at is None or self.days is not None:
            raise ValueError(f'{self.op} takes "at", an ISO 8601 instant with its offset (and no "days")')
        return self


class ImportBatchCondition(_Condition):
    """People that came from one import: created by it, or matched by one of its rows."""

    type: Literal["import_batch"]
    batch_id: Id


CONDITION_MODELS: tuple[type[_Condition], ...] = (
    AttributeCondition,
    TagCondition,
    IdentifierCondition,
    CountryCondition,
    TimezoneCondition,
    ConsentCondition,
    CreatedCondition,
    ImportBatchCondition,
)
Condition = (
    AttributeCondition
    | TagCondition
    | IdentifierCondition
    | CountryCondition
    | TimezoneCondition
    | ConsentCondition
    | CreatedCondition
    | ImportBatchCondition
)
_CONDITION: TypeAdapter[Condition] = TypeAdapter(Annotated[Condition, Field(discriminator="type")])
CONDITION_TYPES = ("attribute", "tag", "identifier", "country", "timezone", "consent", "created", "import_batch")


@dataclass(frozen=True, slots=True)
class AllOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    child: Node


Node = AllOf | AnyOf | NotOf | Condition


@dataclass(frozen=True, slots=True)
class Definition:
    """A parsed, bounded filter tree; `as_data()` is the normalised JSON that is stored."""

    root: Node

    def as_data(self) -> dict[str, Any]:
        return _as_data(self.root)

    @property
    def relative(self) -> bool:
        """Does the audience depend on the current instant (a `within_days` condition)?"""
        return any(isinstance(n, CreatedCondition) and n.op == "within_days" for n in _walk(self.root))


EVERYONE = Definition(AllOf(()))


def _walk(node: Node) -> list[Node]:
    if isinstance(node, AllOf | AnyOf):
        return [node, *(n for child in node.children for n in _walk(child))]
    if isinstance(node, NotOf):
        return [node, *_walk(node.child)]
    return [node]


def _as_data(node: Node) -> dict[str, Any]:
    if isinstance(node, AllOf):
        return {"all": [_as_data(child) for child in node.children]}
    if isinstance(node, AnyOf):
        return {"any": [_as_data(child) for child in node.children]}
    if isinstance(node, NotOf):
        return {"not": _as_data(node.child)}
    return node.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- parsing ------------------------------------------------------------------------------------------


def _bad(path: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: {message}", field=path)


def _leaf_error(path: str, exc: ValidationError) -> InvalidInputError:
    error = exc.errors(include_url=False)[0]
    loc = list(error["loc"])
    if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
        types = ", ".join(CONDITION_TYPES)
        return _bad(f"{path}.type", f'a condition needs a "type" among {types} (or use a group: all, any, not)')
    if loc and loc[0] in CONDITION_TYPES:
        loc = loc[1:]  # the discriminator's tag, not a field
    where = path
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return _bad(where, message)


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def node(self, data: Any, path: str, depth: int) -> Node:
        if not isinstance(data, Mapping):
            raise _bad(path, "expected an object: a group (all, any, not) or a condition with a type")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _bad(path, f"a definition has at most {MAX_NODES} groups and conditions")
        if depth > MAX_DEPTH:
            raise _bad(path, f"groups nest at most {MAX_DEPTH} deep")
        groups = [key for key in GROUPS if key in data]
        if not groups:
            try:
                return _CONDITION.validate_python(dict(data))
            except ValidationError as exc:
                raise _leaf_error(path, exc) from exc
        if len(data) != 1:
            raise _bad(path, f"a group has exactly one key ({', '.join(GROUPS)})")
        key = groups[0]
        if key == "not":
            return NotOf(self.node(data["not"], f"{path}.not", depth + 1))
        items = data[key]
        if not isinstance(items, list):
            raise _bad(f"{path}.{key}", "expected a list of groups and conditions")
        children = tuple(self.node(item, f"{path}.{key}[{i}]", depth + 1) for i, item in enumerate(items))
        return AllOf(children) if key == "all" else AnyOf(children)


def parse_definition(data: Mapping[str, Any]) -> Definition:
    """Validate a JSON definition; raises InvalidInputError naming the path of the bad node (`definition.all[2].op`)."""
    return Definition(_Parser().node(data, "definition", 1))


# -- compiling ----------------------------------------------------------------------------------------


def _attribute(c: AttributeCondition, _now: dt.datetime) -> sa.ColumnElement[bool]:
    if c.op == "exists":
        return people.attribute_exists(c.name)
    if c.op == "missing":
        return sa.not_(people.attribute_exists(c.name))
    assert c.value is not None  # the model requires one for every other op
    if c.op == "equals":
        return people.attribute_equals(c.name, c.value)
    if c.op == "not_equals":
        # Missing counts as "not equal": the complement of equals, within active people.
        return sa.not_(people.attribute_equals(c.name, c.value))
    if c.op == "contains":
        return people.attribute_contains(c.name, str(c.value))
    assert isinstance(c.value, int | float)
    return people.attribute_compare(c.name, c.op, c.value)


def _tag(c: TagCondition, _now: dt.datetime) -> sa.ColumnElement[bool]:
    has = people.has_tag(c.tag)
    return has if c.op == "has" else sa.not_(has)


def _identifier(c: IdentifierCondition, _now: dt.datetime) -> sa.ColumnElement[bool]:
    has = people.has_identifier(c.kind)
    return has if c.op == "present" else sa.not_(has)


def _country(c: CountryCondition, _now: dt.datetime) -> sa.ColumnElement[bool]:
    return people.country_in(c.in_)


def _timezone(c: TimezoneCondition, _now: dt.datetime) -> sa.ColumnElement[bool]:
    return people.timezone_in(c.in_, unknown=c.unknown)


def _consent(c: ConsentCondition, _now: dt.datetime) -> sa.ColumnElement[bool]:
    found = consent_audience.permitted(c.channel, c.purpose)
    if not c.allowed:
        found = found.inverted()
    return people.person_in(found.ids, negate=found.complement)


def _created(c: CreatedCondition, now: dt.datetime) -> sa.ColumnElement[bool]:
    if c.op == "within_days":
        assert c.days is not None
        return people.created_at_or_after(now - dt.timedelta(days=c.days))
    assert c.at is not None
    return people.created_before(c.at) if c.op == "before" else people.created_at_or_after(c.at)


def _import_batch(c: ImportBatchCondition, _now: dt.datetime) -> sa.ColumnElement[bool]:
    return people.in_import_batch(c.batch_id)


_COMPILERS: dict[type[_Condition], Callable[[Any, dt.datetime], sa.ColumnElement[bool]]] = {
    AttributeCondition: _attribute,
    TagCondition: _tag,
    IdentifierCondition: _identifier,
    CountryCondition: _country,
    TimezoneCondition: _timezone,
    ConsentCondition: _consent,
    CreatedCondition: _created,
    ImportBatchCondition: _import_batch,
}


# Rough cost per person of each condition: plain columns, then id sets built once, then JSON parsing.
# SQLite evaluates AND/OR terms in the order written and stops early, so cheap terms go first.
_COSTS: dict[type[_Condition], int] = {
    CountryCondition: 1,
    TimezoneCondition: 1,
    CreatedCondition: 1,
    ImportBatchCondition: 2,
    ConsentCondition: 3,
    IdentifierCondition: 3,
    TagCondition: 5,
    AttributeCondition: 6,
}


def _cost(node: Node) -> int:
    if isinstance(node, AllOf | AnyOf):
        return sum(_cost(child) for child in node.children)
    if isinstance(node, NotOf):
        return _cost(node.child)
    if isinstance(node, AttributeCondition) and _numeric(node):
        return _COSTS[ConsentCondition]  # an id set from the attribute index, not JSON parsing
    return _COSTS[type(node)]


def _numeric(c: AttributeCondition) -> bool:
    return c.op in ("greater", "less") or (c.op in ("equals", "not_equals") and isinstance(c.value, int | float))


@dataclass(frozen=True, slots=True)
class _Set:
    """A leaf that is a set of person ids (`negate`: everyone else), so sets can be merged into one."""

    ids: sa.Select[tuple[int]]
    negate: bool


def _set_of(node: Node) -> _Set | None:
    """Identifier, consent and numeric attribute conditions are id sets; other leaves are not."""
    if isinstance(node, IdentifierCondition):
        return _Set(people.identifier_ids(node.kind), negate=node.op == "absent")
    if isinstance(node, ConsentCondition):
        found = consent_audience.permitted(node.channel, node.purpose)
        return _Set(found.ids, negate=found.complement != (not node.allowed))
    if isinstance(node, AttributeCondition) and _numeric(node):
        assert isinstance(node.value, int | float)
        op = "equals" if node.op == "not_equals" else node.op
        return _Set(people.number_ids(node.name, op, node.value), negate=node.op == "not_equals")
    return None


def _predicate(node: Node, now: dt.datetime, *, negated: bool = False) -> sa.ColumnElement[bool]:
    """SQL for `node` (or its complement), with negations pushed down to the leaves (De Morgan).

    `not any(a, b)` becomes `not a and not b`: PostgreSQL then runs a negated person set as an anti-join
    instead of a probe per person under an OR; every leaf is two-valued, so the rewrite is exact. Sibling
    id sets that combine as a union are merged (`not a and not b` is "in neither": one probe of
    a ∪ b on SQLite; `a or b` likewise).
    """
    if isinstance(node, NotOf):
        return _predicate(node.child, now, negated=not negated)
    if isinstance(node, AllOf | AnyOf):
        conjunction = isinstance(node, AllOf) != negated  # all → and; a negated all → or (and vice versa)
        if not node.children:
            return sa.true() if conjunction else sa.false()
        terms: list[sa.ColumnElement[bool] | None] = []
        union: list[sa.Select[tuple[int]]] = []
        slot = 0
        for child in sorted(node.children, key=_cost):
            found = _set_of(child)
            # Under AND the sets to exclude merge (not a and not b); under OR the sets to include (a or b).
            if found is not None and (found.negate != negated) == conjunction:
                if not union:
                    slot = len(terms)
                    terms.append(None)
                union.append(found.ids)
            else:
                terms.append(_predicate(child, now, negated=negated))
        if union:
            terms[slot] = people.person_in_any(union, negate=conjunction)
        clauses = [term for term in terms if term is not None]
        return sa.and_(*clauses) if conjunction else sa.or_(*clauses)
    found = _set_of(node)
    if found is not None:
        return people.person_in(found.ids, negate=found.negate != negated)
    leaf = _COMPILERS[type(node)](node, now)
    return sa.not_(leaf) if negated else leaf


def audience_select(definition: Definition, *, now: dt.datetime | None = None) -> sa.Select[tuple[int]]:
    """The active people matching `definition`, one column `person_id` (a subquery, or `INSERT … SELECT`).

    `now` is the Clock's instant (`uow.now`, `runtime.clock.now()`) that `within_days` counts back from;
    pass it whenever you have a clock. Without it the instant is read from the system clock.
    """
    if now is None:
        now = dt.datetime.now(dt.UTC)  # callers with a Clock pass its instant; this keeps the signature simple
    # Only id sets: SQLite would scan the covering (created_at, status) index and probe the sets in
    # created_at order, so ask for id order. Any other leaf reads people's columns (a table scan anyway)
    # or searches created_at (the index is right there).
    leaves = [node for node in _walk(definition.root) if not isinstance(node, AllOf | AnyOf | NotOf)]
    only_sets = bool(leaves) and all(_set_of(leaf) is not None for leaf in leaves)
    return people.active_people(_predicate(definition.root, now), in_id_order=only_sets)


def count_audience(conn: sa.Connection, definition: Definition, *, now: dt.datetime | None = None) -> int:
    """How many active people match `definition` now."""
    matching = audience_select(definition, now=now).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(matching)).scalar_one())


def preview_audience(
    conn: sa.Connection, definition: Definition, *, limit: int = 20, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """The first `limit` matching people (by id): id, names, an e-mail address, country and zone."""
    return people.preview_people(conn, audience_select(definition, now=now), limit=limit)


__all__ = [
    "CONDITION_MODELS",
    "EVERYONE",
    "PURPOSES",
    "AllOf",
    "AnyOf",
    "Condition",
    "Definition",
    "Node",
    "NotOf",
    "audience_select",
    "count_audience",
    "parse_definition",
    "preview_audience",
]
