"""Segment evaluation: every condition against a known population, exact member ids, on both engines."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from herald.contacts import importing, service
from herald.contacts.service import ContactInput
from herald.core.actor import SYSTEM
from herald.core.clock import FrozenClock
from herald.core.errors import InvalidInputError
from herald.segments.audience import audience_select, count_audience, parse_definition
from tests.helpers import in_unit

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def _person(engine: sa.Engine, clock: FrozenClock, at: dt.datetime, **kwargs: Any) -> int:
    clock.set(at)
    fields = kwargs.pop("fields", {})
    person_id, _ = service.upsert_contact(
        engine, clock, ContactInput(fields=fields, **kwargs), default_region="US", source="test"
    )
    return person_id


def _consent(engine: sa.Engine, clock: FrozenClock, person_id: int, *events: tuple[str, str, str, bool]) -> None:
    for channel, purpose, kind, explicit in events:
        clock.advance(dt.timedelta(minutes=1))
        in_unit(
            engine,
            clock,
            SYSTEM,
            service.record_consent,
            person_id,
            channel=channel,
            purpose=purpose,
            kind=kind,
            explicit=explicit,
            source="test",
        )


@pytest.fixture
def population(engine: sa.Engine, clock: FrozenClock, tmp_path: Path) -> dict[str, Any]:
    """Five active people (ann, bob, cat, dan, fay) and one merged away (eve), ids by name."""
    day = dt.timedelta(days=1)
    ids: dict[str, Any] = {}
    ids["ann"] = _person(
        engine,
        clock,
        NOW - 21 * day,
        emails=["ann@example.com"],
        fields={
            "first_name": "Ann",
            "country": "FR",
            "timezone": "Europe/Paris",
            "attributes": {"plan": "pro", "age": "34", "city": "Paris"},
            "tags": ["vip", "beta"],
        },
    )
    ids["bob"] = _person(
        engine,
        clock,
        NOW - 12 * day,
        phones=["+14155550101"],
        fields={
            "first_name": "Bob",
            "country": "US",
            "timezone": "America/New_York",
            "attributes": {"plan": "free", "age": 19},
            "tags": ["beta"],
        },
    )
    ids["cat"] = _person(
        engine,
        clock,
        NOW - 2 * day,
        emails=["cat@example.com"],
        handles=["@cat"],
        fields={"first_name": "Cat", "attributes": {"age": "abc", "plan": None}, "tags": ['vip"x', "é"]},
    )
    ids["dan"] = _person(
        engine,
        clock,
        NOW,
        emails=["dan@example.com"],
        fields={
            "first_name": "Dan",
            "country": "DE",
            "timezone": "Europe/Berlin",
            "attributes": {"plan": "Pro Plus", "age": "40.5", "note": "100%_sure", "city": "Zürich"},
            "tags": ["vip"],
        },
    )
    ids["eve"] = _person(
        engine,
        clock,
        NOW - 3 * day,
        emails=["eve@example.com"],
        fields={"first_name": "Ann", "country": "FR", "attributes": {"plan": "pro"}, "tags": ["vip"]},
    )
    clock.set(NOW - 20 * day)
    _consent(
        engine,
        clock,
        ids["ann"],
        ("email", "marketing", "subscribed", False),
        ("sms", "marketing", "unsubscribed", False),
    )
    _consent(
        engine,
        clock,
        ids["bob"],
        ("email", "marketing", "subscribed", False),
        ("email", "marketing", "unsubscribed", False),
        ("email", "marketing", "subscribed", False),  # not explicit: the opt-out stands
    )
    _consent(
        engine,
        clock,
        ids["cat"],
        ("email", "marketing", "unsubscribed", False),
        ("email", "marketing", "subscribed", True),  # explicit: back in
        ("sms", "marketing", "subscribed", False),
    )
    _consent(
        engine,
        clock,
        ids["dan"],
        ("email", "marketing", "subscribed", False),
        ("email", "all", "bounced", False),
    )
    _consent(engine, clock, ids["eve"], ("email", "marketing", "subscribed", False))
    clock.set(NOW)
    in_unit(engine, clock, SYSTEM, service.merge_contacts, ids["ann"], ids["eve"], reason="test")
    csv = tmp_path / "batch.csv"
    csv.write_text("email,first_name,country\nfay@example.com,Fay,GB\nann@example.com,Ann,FR\n", encoding="utf-8")
    report = importing.run_import(engine, clock, csv, default_region="US")
    ids["batch"] = report.batch_id
    with engine.connect() as conn:
        ids["fay"] = conn.execute(
            sa.text("SELECT person_id FROM identifiers WHERE key = 'fay@example.com'")
        ).scalar_one()
    return ids


def _members(engine: sa.Engine, ids: dict[str, Any], data: dict[str, Any]) -> set[str]:
    names = {v: k for k, v in ids.items() if k != "batch"}
    definition = parse_definition(data)
    with engine.connect() as conn:
        found = {names[pid] for pid in conn.scalars(audience_select(definition, now=NOW))}
        assert count_audience(conn, definition, now=NOW) == len(found)
    return found


def attr(name: str, op: str, value: Any = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": "attribute", "name": name, "op": op}
    if value is not None:
        cond["value"] = value
    return cond


CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("everyone", {"all": []}, {"ann", "bob", "cat", "dan", "fay"}),
    ("no one", {"any": []}, set()),
    ("equals text", attr("plan", "equals", "pro"), {"ann"}),
    ("not equals takes the missing", attr("plan", "not_equals", "pro"), {"bob", "cat", "dan", "fay"}),
    ("contains ignores case", attr("plan", "contains", "PRO"), {"ann", "dan"}),
    ("contains escapes wildcards", attr("note", "contains", "0%_s"), {"dan"}),
    ("like characters are literal", attr("note", "contains", "%"), {"dan"}),
    ("exists (json null is missing)", attr("plan", "exists"), {"ann", "bob", "dan"}),
    ("missing", attr("plan", "missing"), {"cat", "fay"}),
    ("greater: numbers as numbers", attr("age", "greater", 30), {"ann", "dan"}),
    ("greater than a decimal", attr("age", "greater", 34.5), {"dan"}),
    ("less: a JSON number and no text", attr("age", "less", "30"), {"bob"}),
    ("equals a number matches text digits", attr("age", "equals", 34), {"ann"}),
    ("equals a number matches a JSON number", attr("age", "equals", 19.0), {"bob"}),
    ("not is the exact complement", {"not": attr("age", "greater", 30)}, {"bob", "cat", "fay"}),
    ("tag has", {"type": "tag", "tag": "vip"}, {"ann", "dan"}),
    ("tag with a quote", {"type": "tag", "tag": 'vip"x'}, {"cat"}),
    ("tag not ASCII", {"type": "tag", "tag": "é"}, {"cat"}),
    ("equals text not ASCII", attr("city", "equals", "Zürich"), {"dan"}),
    ("not equals text not ASCII", attr("city", "not_equals", "Zürich"), {"ann", "bob", "cat", "fay"}),
    ("tag lacks", {"type": "tag", "op": "lacks", "tag": "vip"}, {"bob", "cat", "fay"}),
    ("email present", {"type": "identifier", "kind": "email"}, {"ann", "cat", "dan", "fay"}),
    ("email absent", {"type": "identifier", "kind": "email", "op": "absent"}, {"bob"}),
    ("phone present", {"type": "identifier", "kind": "phone"}, {"bob"}),
    ("handle present", {"type": "identifier", "kind": "handle"}, {"cat"}),
    ("country in (any case)", {"type": "country", "in": ["fr", "DE"]}, {"ann", "dan"}),
    ("not country keeps unknown countries", {"not": {"type": "country", "in": ["FR", "DE"]}}, {"bob", "cat", "fay"}),
    ("time zone in", {"type": "timezone", "in": ["Europe/Paris", "America/New_York"]}, {"ann", "bob"}),
    ("email marketing allowed", {"type": "consent", "channel": "email"}, {"ann", "cat"}),
    ("email marketing not allowed", {"type": "consent", "channel": "email", "allowed": False}, {"bob", "dan", "fay"}),
    (
        "email transactional: everyone but opt-outs",
        {"type": "consent", "channel": "email", "purpose": "transactional"},
        {"ann", "bob", "cat", "fay"},
    ),
    ("sms marketing allowed", {"type": "consent", "channel": "sms"}, {"cat"}),
    ("created before", {"type": "created", "op": "before", "at": "2026-11-15T00:00:00Z"}, {"ann", "bob"}),
    ("created after", {"type": "created", "op": "after", "at": "2026-11-15T00:00:00+01:00"}, {"cat", "dan", "fay"}),
    ("created within 5 days", {"type": "created", "op": "within_days", "days": 5}, {"cat", "dan", "fay"}),
    (
        "double negation under a negated all",
        {"not": {"all": [{"type": "tag", "tag": "vip"}, {"not": {"type": "country", "in": ["FR"]}}]}},
        {"ann", "bob", "cat", "fay"},
    ),
    (
        "negated empty groups",
        {"any": [{"not": {"all": []}}, {"not": {"any": []}}]},
        {"ann", "bob", "cat", "dan", "fay"},
    ),
    (
        "nested groups",
        {
            "any": [
                {"all": [{"type": "tag", "tag": "vip"}, {"type": "country", "in": ["DE"]}]},
                {"not": {"type": "identifier", "kind": "email"}},
            ]
        },
        {"dan", "bob"},
    ),
]


@pytest.mark.parametrize(("label", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_condition_selects_exactly_the_expected_people(
    engine: sa.Engine, population: dict[str, Any], label: str, data: dict[str, Any], expected: set[str]
) -> None:
    assert _members(engine, population, data) == expected, label


def test_zone_unknown_and_import_batch(engine: sa.Engine, population: dict[str, Any]) -> None:
    with engine.connect() as conn:
        no_zone = {
            pid for pid in conn.scalars(sa.text("SELECT id FROM people WHERE status = 'active' AND timezone IS NULL"))
        }
    names = {v: k for k, v in population.items() if k != "batch"}
    assert {names[p] for p in no_zone} >= {"cat"}
    unknown = {"type": "timezone", "unknown": True}
    assert _members(engine, population, unknown) == {names[p] for p in no_zone}
    paris_or_unknown = {"type": "timezone", "in": ["Europe/Paris"], "unknown": True}
    assert _members(engine, population, paris_or_unknown) == {names[p] for p in no_zone} | {"ann"}
    batch = {"type": "import_batch", "batch_id": population["batch"]}
    assert _members(engine, population, batch) == {"ann", "fay"}  # fay created by it, ann matched by a row


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"all": [{"type": "nope"}]}, "definition.all[0].type"),
        ({"all": [{"name": "x"}]}, "definition.all[0].type"),
        ({"any": [{"all": [{"type": "country", "in": ["FRA"]}]}]}, "definition.any[0].all[0].in[0]"),
        ({"all": [{"type": "attribute", "name": "x", "op": "bigger", "value": 1}]}, "definition.all[0].op"),
        ({"all": [{"type": "attribute", "name": "x", "op": "greater", "value": "abc"}]}, "definition.all[0]"),
        ({"all": [{"type": "attribute", "name": 'a"b', "op": "exists"}]}, "definition.all[0].name"),
        ({"not": {"type": "timezone", "in": ["Mars/Olympus"]}}, "definition.not.in"),
        ({"all": 3}, "definition.all"),
        ({"all": [], "any": []}, "definition"),
        ({"all": ["x"]}, "definition.all[0]"),
        ({"type": "created", "op": "before", "at": "2026-11-15T00:00:00"}, "definition.at"),
        ({"type": "consent", "channel": "pigeon"}, "definition.channel"),
        ({"type": "tag", "tag": "vip", "extra": 1}, "definition.extra"),
    ],
)
def test_bad_definitions_name_the_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_definition(data)
    assert caught.value.fields["field"] == path, caught.value.message


def test_depth_and_size_are_bounded() -> None:
    deep: dict[str, Any] = {"type": "tag", "tag": "x"}
    for _ in range(9):
        deep = {"not": deep}
    with pytest.raises(InvalidInputError, match="nest at most"):
        parse_definition(deep)
    wide = {"any": [{"type": "tag", "tag": str(i)} for i in range(250)]}
    with pytest.raises(InvalidInputError, match="at most 200"):
        parse_definition(wide)


def test_definition_round_trips_through_its_stored_form() -> None:
    data = {"all": [attr("age", "greater", "30"), {"not": {"type": "country", "in": ["fr"]}}]}
    stored = parse_definition(data).as_data()
    assert stored == {
        "all": [
            {"type": "attribute", "name": "age", "op": "greater", "value": 30.0},
            {"not": {"type": "country", "in": ["FR"]}},
        ]
    }
    assert parse_definition(stored).as_data() == stored
