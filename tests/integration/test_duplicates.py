"""Duplicate suggestions through the CLI and the HTTP API on SQLite and PostgreSQL: a realistic population
yields few suggestions and every planted duplicate; evidence and names shown; paging with a total;
dismiss remembered by a re-scan; an unmerge reopens its suggestion; upgrading stored suggestions."""

from __future__ import annotations

import csv
import datetime as dt
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from herald.db import migrate
from herald.db.contacts_tables import identifiers, merge_suggestions, people
from herald.db.engine import create_db_engine
from herald.db.types import UTCDateTime
from tests.conftest import empty_database_url
from tests.helpers import cli, scan_duplicates

FIRST = [
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William", "Elizabeth",
    "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Nancy", "Matthew", "Lisa", "Anthony", "Betty", "Mark", "Sandra", "Paul", "Ashley",
]  # fmt: skip
LAST = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
]  # fmt: skip
FREE = ["gmail.com", "yahoo.com", "hotmail.com", "outlook.com"]
COMPANIES = [f"company{k}.example" for k in range(40)]
POPULATION = 2917  # the scan
HEADER = ["Email", "First Name", "Last Name", "Phone"]


def phone(rng: random.Random, area: str | None = None) -> str:
    return f"+1{area or rng.choice(['415', '650', '212', '312'])}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"


def population(rng: random.Random) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """Rows for a file of common names, and the planted real duplicates as (e-mail, e-mail) pairs."""
    rows: list[list[str]] = []
    used_phones: set[str] = set()
    per_company: dict[str, set[tuple[str, str]]] = {c: set() for c in COMPANIES}
    while len(rows) < POPULATION:
        i = len(rows)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        if rng.random() < 0.2:
            domain = rng.choice(COMPANIES)
            if (first, last) in per_company[domain]:
                continue  # strangers with one name at one small company would be a fair suggestion
            per_company[domain].add((first, last))
        else:
            domain = rng.choice(FREE)
        number = phone(rng) if rng.random() < 0.5 else ""
        if number[-7:] in used_phones:
            continue
        used_phones.add(number[-7:])
        rows.append([f"{first}.{last}{i}@{domain}".lower(), first, last, number])
    planted: list[tuple[str, str]] = []

    def plant(original: list[str], copy: list[str]) -> None:
        rows.insert(rng.randrange(len(rows)), copy)
        rows.insert(rng.randrange(len(rows)), original)
        planted.append((original[0], copy[0]))

    # A name typo, both at the employer's domain.
    for k, (first, last, typo) in enumerate(
        [("Katherine", "Johnson", "Jonson"), ("Christopher", "Martinez", "Martines"), ("Elizabeth", "Taylor", "Tayler")]
    ):
        plant([f"{first}@plant{k}.example", first, last, ""], [f"{first[0]}{typo}@plant{k}.example", first, typo, ""])
    # The same mobile with the wrong area code, private addresses.
    for k, (first, last) in enumerate([("Maria", "Garcia"), ("Wei", "Zhang"), ("Olu", "Adeyemi")]):
        number = phone(rng, "415")
        plant(
            [f"{first}{k}@gmail.com", first, last, number],
            [f"{last}.{first}@yahoo.com", first, last, "+1650" + number[-7:]],
        )
    # One switchboard: the same number but for the last digit.
    number = phone(rng, "212")
    plant(
        ["dana@gmail.com", "Dana", "Whitfield", number],
        ["d.whitfield@outlook.com", "Dana", "Whitfeld", number[:-1] + "9"],
    )
    # A household landline: one phone, two first names; the import itself suggests the pair.
    number = phone(rng, "312")
    plant(["alan@turing-house.example", "Alan", "Turing", number], ["ethel@gmail.com", "Ethel", "Turing", number])
    return rows, planted


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def person_of(engine: sa.Engine, email: str) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(sa.select(identifiers.c.person_id).where(identifiers.c.key == email.lower()))
    assert pid is not None, email
    return int(pid)


def open_pairs(api: Any) -> dict[frozenset[int], dict[str, Any]]:
    body = api.get("/api/duplicates", params={"per_page": 500}).json()
    assert body["total"] == len(body["suggestions"])
    return {frozenset((s["person_a"]["id"], s["person_b"]["id"])): s for s in body["suggestions"]}


def test_a_realistic_population_gives_few_suggestions_and_all_planted_duplicates(
    engine: sa.Engine, cli_env: dict[str, str], api: Any, tmp_path: Path
) -> None:
    rows, planted = population(random.Random(2917))
    names = Counter((r[1], r[2]) for r in rows)
    look_alikes = sum(n * (n - 1) // 2 for n in names.values())
    assert look_alikes > 3000  # what a name-only rule would put in front of an operator

    imported = cli("contacts", "import", str(write_rows(tmp_path / "people.csv", rows)))
    assert imported.exit_code == 0, imported.output
    assert "suggested=1" in imported.output  # the household, from the import itself

    out = cli("contacts", "duplicates", "--per-page", "5")
    assert out.exit_code == 0, out.output
    total = int(re.search(r"(\d+) open suggestions; showing 1–5 \(page 1 of (\d+)\)", out.output)[1])  # type: ignore[index]
    # Besides the planted pairs, only look-alikes with real evidence (one-letter names at one small company).
    assert len(planted) <= total <= len(planted) + 2, out.output

    found = open_pairs(api)
    for a_email, b_email in planted:
        pair = frozenset((person_of(engine, a_email), person_of(engine, b_email)))
        assert pair in found, (a_email, b_email)
    for suggestion in found.values():
        kinds = {e["kind"] for e in suggestion["evidence"]}
        assert kinds - {"similar_name"}, suggestion  # never a similar name alone
        assert suggestion["person_a"]["name"] and suggestion["person_b"]["name"]

    household = found[frozenset((person_of(engine, "alan@turing-house.example"), person_of(engine, "ethel@gmail.com")))]
    assert household["evidence"][0]["kind"] == "shared_phone"
    assert household["evidence"][0]["text"].startswith("shared phone +1 312-")
    typo = found[
        frozenset((person_of(engine, "Katherine@plant0.example"), person_of(engine, "KJonson@plant0.example")))
    ]
    assert {e["text"] for e in typo["evidence"]} >= {"both at company domain plant0.example"}
    assert "Katherine Johnson" in {typo["person_a"]["name"], typo["person_b"]["name"]}

    # A second scan finds nothing new and keeps the same total; the household keeps its import evidence.
    again = scan_duplicates(api)
    assert again == {"new": 0, "refreshed": total - 1, "withdrawn": 0, "open_total": total}
    assert open_pairs(api) == found


def add(api: Any, email: str, first: str, last: str, phone: str | None = None) -> int:
    body: dict[str, Any] = {"emails": [email], "first_name": first, "last_name": last}
    if phone:
        body["phones"] = [phone]
    response = api.post("/api/contacts", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def colleagues(api: Any, count: int) -> list[tuple[int, int]]:
    """`count` pairs of near-identical names at one company each: real suggestions."""
    pairs = []
    for k in range(count):
        a = add(api, f"anna.k{k}@firm{k}.example", "Anna", f"Kowalska{k}")
        b = add(api, f"akowalska{k}@firm{k}.example", "Ana", f"Kowalska{k}")
        pairs.append((a, b))
    return pairs


def test_paging_with_total_through_api_and_cli(api: Any, cli_env: dict[str, str]) -> None:
    colleagues(api, 5)
    assert scan_duplicates(api)["new"] == 5
    first = api.get("/api/duplicates", params={"per_page": 2}).json()
    assert (first["total"], first["page"], first["per_page"], first["last_page"]) == (5, 1, 2, 3)
    ids = [s["id"] for s in first["suggestions"]]
    for page in (2, 3):
        ids += [s["id"] for s in api.get("/api/duplicates", params={"per_page": 2, "page": page}).json()["suggestions"]]
    assert len(ids) == len(set(ids)) == 5
    beyond = api.get("/api/duplicates", params={"per_page": 2, "page": 4}).json()
    assert beyond["total"] == 5 and beyond["suggestions"] == []

    old_route = api.get("/api/contacts/duplicates").json()  # the deprecated scan-and-list, still answering
    assert old_route["total"] == 5 and {s["id"] for s in old_route["suggestions"]} == set(ids)
    assert all(s["evidence"] and s["person_a_name"] for s in old_route["suggestions"])

    bad = api.get("/api/duplicates", params={"page": 0})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"
    assert api.get("/api/duplicates", params={"status": "maybe"}).status_code == 422

    out = cli("contacts", "duplicates", "--no-scan", "--per-page", "2", "--page", "3")
    assert out.exit_code == 0, out.output
    assert "5 open suggestions; showing 5–5 (page 3 of 3)" in out.output
    assert "Anna Kowalska4" in out.output or "Ana Kowalska4" in out.output or "Kowalska" in out.output
    assert cli("contacts", "duplicates", "--no-scan", "--status", "maybe").exit_code == 1


def test_dismissed_pairs_stay_dismissed_after_a_rescan(api: Any, cli_env: dict[str, str]) -> None:
    (a1, b1), (a2, b2) = colleagues(api, 2)
    scan_duplicates(api)
    by_pair = {frozenset((s["person_a"]["id"], s["person_b"]["id"])): s["id"] for s in open_pairs(api).values()}
    first, second = by_pair[frozenset((a1, b1))], by_pair[frozenset((a2, b2))]

    dismissed = api.post(f"/api/duplicates/{first}/dismiss")
    assert dismissed.status_code == 200
    assert dismissed.json()["status"] == "dismissed" and dismissed.json()["decided_by"] == "api key tests"
    assert api.post(f"/api/duplicates/{first}/dismiss").json()["status"] == "dismissed"  # twice is harmless
    out = cli("contacts", "dismiss-suggestion", str(second))
    assert out.exit_code == 0 and f"suggestion {second} dismissed" in out.output, out.output

    rescan = scan_duplicates(api)
    assert rescan["new"] == 0 and rescan["open_total"] == 0
    assert api.get("/api/duplicates").json()["total"] == 0
    listed = api.get("/api/duplicates", params={"status": "dismissed"}).json()
    assert {s["id"] for s in listed["suggestions"]} == {first, second}
    assert "no open duplicate suggestions" in cli("contacts", "duplicates").output

    missing = api.post("/api/duplicates/99999/dismiss")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    refused = cli("contacts", "dismiss-suggestion", "99999")
    assert refused.exit_code == 1 and "No duplicate suggestion with id 99999" in refused.output


def test_merging_marks_the_suggestion_merged_and_unmerging_reopens_it(api: Any, cli_env: dict[str, str]) -> None:
    ((a, b),) = colleagues(api, 1)
    scan_duplicates(api)
    (suggestion,) = open_pairs(api).values()

    merged = api.post(
        "/api/merges", json={"survivor_id": a, "merged_id": b, "reason": f"suggestion {suggestion['id']}"}
    )
    assert merged.status_code == 201
    assert api.get(f"/api/duplicates/{suggestion['id']}").json()["status"] == "merged"
    assert api.get("/api/duplicates").json()["total"] == 0
    refused = api.post(f"/api/duplicates/{suggestion['id']}/dismiss")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert scan_duplicates(api)["new"] == 0  # b is merged: nothing to suggest

    undone = api.post(f"/api/merges/{merged.json()['id']}/undo").json()
    assert undone == {"survivor_id": a, "restored_id": b, "reopened_suggestion_id": suggestion["id"]}
    reopened = api.get(f"/api/duplicates/{suggestion['id']}").json()
    assert reopened["status"] == "open" and reopened["decided_at"] is None
    assert api.get("/api/duplicates").json()["total"] == 1

    # The same through the CLI: merge, then unmerge says which suggestion is open again.
    out = cli("contacts", "merge", str(b), str(a))
    merge_id = re.search(r"merge (\d+):", out.output)[1]  # type: ignore[index]
    assert api.get(f"/api/duplicates/{suggestion['id']}").json()["status"] == "merged"
    out = cli("contacts", "unmerge", merge_id)
    assert out.exit_code == 0 and f"duplicate suggestion {suggestion['id']} is open again" in out.output


def test_rescan_withdraws_open_suggestions_that_lost_their_evidence(api: Any) -> None:
    ((_, b),) = colleagues(api, 1)
    scan_duplicates(api)
    assert api.get("/api/duplicates").json()["total"] == 1
    # The second address turns out to belong to someone else: a newer record renames that person.
    api.post(
        "/api/contacts", json={"emails": ["akowalska0@firm0.example"], "first_name": "Zbigniew", "last_name": "Nowak"}
    )
    assert api.get(f"/api/contacts/{b}").json()["first_name"] == "Zbigniew"
    assert scan_duplicates(api) == {"new": 0, "refreshed": 0, "withdrawn": 1, "open_total": 0}


@pytest.fixture
def empty_url(db_kind: str, tmp_path: Path) -> Iterator[str]:
    yield from empty_database_url(db_kind, tmp_path)


def test_upgrade_drops_name_only_suggestions_and_keeps_decisions(empty_url: str) -> None:
    engine = create_db_engine(empty_url)
    migrate.upgrade(engine, "0003")
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    person = {
        "status": "active",
        "attributes": {},
        "tags": [],
        "locked_fields": [],
        "created_at": now,
        "updated_at": now,
    }
    legacy = sa.table(
        "merge_suggestions",
        *(sa.column(c) for c in ("person_a_id", "person_b_id", "score", "reason", "status")),
        sa.column("created_at", UTCDateTime()),
    )
    with engine.begin() as conn:
        ids = [conn.execute(people.insert().values(person).returning(people.c.id)).scalar_one() for _ in range(6)]
        conn.execute(
            legacy.insert(),
            [
                {"person_a_id": ids[0], "person_b_id": ids[1], "score": 90.0, "status": "open",
                 "reason": "similar names (90) sharing phone +1415555", "created_at": now},
                {"person_a_id": ids[2], "person_b_id": ids[3], "score": 100.0, "status": "open",
                 "reason": "shared phone, different first name", "created_at": now},
                {"person_a_id": ids[4], "person_b_id": ids[5], "score": 95.0, "status": "dismissed",
                 "reason": "similar names (95) sharing domain acme.io", "created_at": now},
            ],
        )  # fmt: skip
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                merge_suggestions.c.person_a_id, merge_suggestions.c.status, merge_suggestions.c.evidence
            ).order_by(merge_suggestions.c.person_a_id)
        ).all()
    assert [tuple(r) for r in rows] == [
        (ids[2], "open", [{"kind": "shared_phone", "detail": ""}]),
        (ids[4], "dismissed", []),
    ]
    migrate.downgrade(engine, "0003")
    engine.dispose()


SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "tu",
    "be",
    "sho",
    "va",
    "ni",
    "del",
    "par",
    "gon",
    "fi",
    "wen",
    "tor",
    "lu",
    "sa",
    "ke",
    "bra",
    "om",
    "ul",
    "zin",
    "dor",
    "fe",
    "ha",
]


def test_a_large_company_domain_is_scanned_in_name_groups(
    engine: sa.Engine, cli_env: dict[str, str], api: Any, tmp_path: Path
) -> None:
    rng = random.Random(7)
    surnames = sorted({"".join(rng.choice(SYLLABLES) for _ in range(4)).capitalize() for _ in range(3000)})
    # More people at one domain than one block holds; the planted pair comes last, where a cut would drop it.
    rows = [[f"employee{i}@bigcorp.example", rng.choice(FIRST), rng.choice(surnames), ""] for i in range(2500)]
    rows.append(["jennifer.okafor@bigcorp.example", "Jennifer", "Okafor", ""])
    rows.append(["j.okafor@bigcorp.example", "Jenifer", "Okafor", ""])
    assert cli("contacts", "import", str(write_rows(tmp_path / "big.csv", rows))).exit_code == 0
    scan = scan_duplicates(api)
    assert scan["open_total"] < 100, scan  # same company and (near) same name: a fair question for a human
    found = open_pairs(api)
    pair = frozenset(
        (person_of(engine, "jennifer.okafor@bigcorp.example"), person_of(engine, "j.okafor@bigcorp.example"))
    )
    assert pair in found
    assert all("both at company domain bigcorp.example" in s["summary"] for s in found.values())
