"""Numeric attribute conditions read from attribute_numbers select exactly what the JSON says.

Hypothesis draws people's attribute documents (JSON numbers, numeric and almost-numeric strings,
booleans, nulls, nested values), rewrites and deletes some, and draws filter trees of numeric
conditions (greater, less, equals, not_equals) and phone conditions under all / any / not. The
members `audience_select` finds through the trigger-kept index must be the active people a
brute-force evaluation of each person's JSON attributes picks, and `count_audience` their number.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.core.clock import FrozenClock
from herald.db.bulk import bulk_insert
from herald.db.contacts_tables import identifiers, people
from herald.segments.audience import audience_select, count_audience, parse_definition
from tests.integration.test_attribute_index import expected, indexed, number_of

NAMES = ("age", "score", "n")

# Strings stay short (at most 6 significant digits), where both engines and Decimal agree on the value.
numeric_text = st.builds(
    lambda sign, whole, point, frac: f"{sign}{whole}{point}{frac}",
    st.sampled_from(("", "-", "+")),
    st.sampled_from(("", "0", "7", "19", "30", "250")),
    st.sampled_from(("", ".")),
    st.sampled_from(("", "5", "25", "0")),
)
odd_text = st.text(alphabet="0123456789.+- e", max_size=5)
# Values and thresholds from small sets, so draws often meet at a boundary (equal, just above, just below).
value = st.one_of(
    st.sampled_from((-7, 0, 7, 19, 30, 31, 250)),
    st.integers(-300, 300),
    st.sampled_from((0.5, -2.25, 29.75, 30.0, 1e3)),
    numeric_text,
    odd_text,
    st.booleans(),
    st.none(),
    st.just([30]),
    st.just({"age": 30}),
)
document = st.dictionaries(st.sampled_from(NAMES), value, max_size=3)

threshold = st.one_of(
    st.sampled_from((0, 7, 19, 30, 250, -7)),
    st.integers(-10, 300),
    st.sampled_from((0.5, 29.75, -2.25, 30.0, 19.5)),
)
leaf = st.builds(
    lambda name, op, v: {"type": "attribute", "name": name, "op": op, "value": v},
    st.sampled_from(NAMES),
    st.sampled_from(("greater", "less", "equals", "not_equals")),
    threshold,
)
# Identifier leaves too: id sets of another table that merge with the numeric ones into one union.
phone = st.builds(lambda op: {"type": "identifier", "kind": "phone", "op": op}, st.sampled_from(("present", "absent")))
tree = st.recursive(
    st.one_of(leaf, leaf, phone),
    lambda children: st.one_of(
        st.builds(lambda c: {"all": c}, st.lists(children, max_size=3)),
        st.builds(lambda c: {"any": c}, st.lists(children, max_size=3)),
        st.builds(lambda c: {"not": c}, children),
    ),
    max_leaves=5,
)


def _holds(node: dict[str, Any], attributes: dict[str, Any]) -> bool:
    """The brute force: evaluate the tree on one person's JSON attributes."""
    if "all" in node:
        return all(_holds(child, attributes) for child in node["all"])
    if "any" in node:
        return any(_holds(child, attributes) for child in node["any"])
    if "not" in node:
        return not _holds(node["not"], attributes)
    if node["type"] == "identifier":
        return bool(attributes.get("\x00phone")) == (node["op"] == "present")
    number = number_of(attributes.get(node["name"]))
    op, v = node["op"], node["value"]
    if op == "not_equals":
        return not _holds({**node, "op": "equals"}, attributes)
    if number is None:
        return False
    # PostgreSQL compares NUMERIC with a float parameter as floats, with an integer exactly.
    left: Decimal | float = float(number) if isinstance(v, float) else number
    return bool(left > v if op == "greater" else left < v if op == "less" else left == v)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    documents=st.lists(st.tuples(document, st.booleans(), st.booleans()), min_size=1, max_size=8),
    rewrites=st.lists(st.tuples(st.integers(0, 7), document), max_size=3),
    deleted=st.lists(st.integers(0, 7), max_size=2),
    definitions=st.lists(tree, min_size=1, max_size=4),
)
def test_numeric_conditions_through_the_index_match_the_json(
    engine: sa.Engine,
    clock: FrozenClock,
    documents: list[tuple[dict[str, Any], bool, bool]],
    rewrites: list[tuple[int, dict[str, Any]]],
    deleted: list[int],
    definitions: list[dict[str, Any]],
) -> None:
    now = clock.now() - dt.timedelta(days=1)
    columns = ("status", "attributes", "tags", "locked_fields", "created_at", "updated_at")
    with engine.begin() as conn:  # each example starts from an empty people table
        conn.execute(identifiers.delete())
        conn.execute(people.delete())
        rows = [("active" if active else "merged", doc, [], [], now, now) for doc, active, _ in documents]
        bulk_insert(conn, people, columns, rows)
        ids = list(conn.scalars(sa.select(people.c.id).order_by(people.c.id)))
        phones = [
            (pid, "phone", f"+1555{pid:07d}", f"+1555{pid:07d}", now)
            for pid, (*_, p) in zip(ids, documents, strict=True)
            if p
        ]
        bulk_insert(conn, identifiers, ("person_id", "kind", "value", "key", "created_at"), phones)
        for index, doc in rewrites:
            conn.execute(people.update().where(people.c.id == ids[index % len(ids)]).values(attributes=doc))
        for index in deleted:
            conn.execute(identifiers.delete().where(identifiers.c.person_id == ids[index % len(ids)]))
            conn.execute(people.delete().where(people.c.id == ids[index % len(ids)]))
        with_phone = set(conn.scalars(sa.select(identifiers.c.person_id)))
    assert indexed(engine) == expected(engine)
    with engine.connect() as conn:
        population = conn.execute(sa.select(people.c.id, people.c.attributes).where(people.c.status == "active")).all()
        for data in definitions:
            definition = parse_definition(data)
            found = set(conn.scalars(audience_select(definition, now=clock.now())))
            want = {pid for pid, attrs in population if _holds(data, {**attrs, "\x00phone": pid in with_phone})}
            assert found == want, data
            assert count_audience(conn, definition, now=clock.now()) == len(want)
