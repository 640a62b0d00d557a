"""Duplicate suggestions: store pairs with their evidence, scan for new ones, list a page, dismiss."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import sqlalchemy as sa

from herald.contacts.evidence import (
    NAME_THRESHOLD,
    STRONG,
    Evidence,
    PersonFacts,
    assess,
    from_json,
    name_similarity,
    pair_evidence,
    summary,
    to_json,
)
from herald.contacts.identity import EMAIL, PHONE, name_key
from herald.core.clock import Clock
from herald.core.errors import ConflictError, InvalidInputError, NotFoundError
from herald.db.contacts_tables import identifiers, merge_suggestions, people
from herald.db.engine import dialect_insert, read_connection
from herald.db.unit_of_work import UnitOfWork

STATUSES = ("open", "dismissed", "merged")
MAX_BLOCK = 1000  # a block's pairs grow with its square; bigger blocks are split by name initials
MAX_PER_PAGE = 500
REASON_LENGTH = 200  # the words version kept in `reason` for older readers; `evidence` holds the data


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: int
    person_a_id: int
    person_a_name: str
    person_b_id: int
    person_b_name: str
    score: float
    status: str
    evidence: tuple[Evidence, ...]
    reason: str  # the evidence in words
    batch_id: int | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None


@dataclass(frozen=True, slots=True)
class SuggestionPage:
    total: int
    page: int
    per_page: int
    items: list[Suggestion]

    @property
    def last_page(self) -> int:
        return max(1, -(-self.total // self.per_page))


@dataclass(frozen=True, slots=True)
class ScanResult:
    new: int  # pairs suggested for the first time
    refreshed: int  # open suggestions whose evidence was brought up to date
    withdrawn: int  # open suggestions that no longer have enough evidence
    open_total: int  # open suggestions after the scan


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _values(evidence: Sequence[Evidence], score: float) -> dict[str, Any]:
    return {"evidence": to_json(evidence), "score": score, "reason": summary(evidence)[:REASON_LENGTH]}


def store_suggestion(
    conn: sa.Connection,
    a: int,
    b: int,
    evidence: Sequence[Evidence],
    *,
    now: dt.datetime,
    batch_id: int | None = None,
) -> bool:
    """Record a pair if its evidence is worth an operator's time; True when it is new.

    A pair is stored once: a dismissed or merged pair is never suggested again (the unique pair
    constraint), and an open one keeps its evidence.
    """
    score = assess(evidence)
    if a == b or score is None:
        return False
    low, high = _pair(a, b)
    stmt = dialect_insert(conn, merge_suggestions).values(
        person_a_id=low, person_b_id=high, status="open", batch_id=batch_id, created_at=now, **_values(evidence, score)
    )
    return bool(conn.execute(stmt.on_conflict_do_nothing()).rowcount)


def store_suggestions(
    conn: sa.Connection,
    pairs: Mapping[tuple[int, int], Sequence[Evidence]],
    *,
    now: dt.datetime,
    batch_id: int | None = None,
) -> int:
    """store_suggestion() for many pairs in one executemany (an import's shared phones); returns how many are new."""
    rows = []
    for (a, b), evidence in pairs.items():
        score = assess(evidence)
        if a == b or score is None:
            continue
        low, high = _pair(a, b)
        values = _values(evidence, score)
        rows.append(
            {"person_a_id": low, "person_b_id": high, "status": "open", "batch_id": batch_id, "created_at": now}
            | values
        )
    if not rows:
        return 0
    # The unique pair constraint keeps a pair once, also against a concurrent import. Only new rows come
    # back from RETURNING (batched into multi-row INSERTs); executemany rowcount is not summed by psycopg.
    stmt = dialect_insert(conn, merge_suggestions).on_conflict_do_nothing().returning(merge_suggestions.c.id)
    return len(conn.execute(stmt, rows).all())


def _facts(conn: sa.Connection) -> dict[int, PersonFacts]:
    names = {
        row.id: (row.first_name, row.last_name)
        for row in conn.execute(
            sa.select(people.c.id, people.c.first_name, people.c.last_name).where(people.c.status == "active")
        )
        # Without a first and a last name there is no name to compare, so no pair to suggest.
        if name_key(row.first_name) and name_key(row.last_name)
    }
    emails: dict[int, list[str]] = defaultdict(list)
    phones: dict[int, list[str]] = defaultdict(list)
    query = sa.select(identifiers.c.person_id, identifiers.c.kind, identifiers.c.key).where(
        identifiers.c.kind.in_([EMAIL, PHONE])
    )
    for pid, kind, key in conn.execute(query):
        if pid in names:
            (emails if kind == EMAIL else phones)[pid].append(key)
    return {
        pid: PersonFacts(first, last, tuple(emails.get(pid, ())), tuple(phones.get(pid, ())))
        for pid, (first, last) in names.items()
    }


def _blocks(facts: dict[int, PersonFacts]) -> Iterable[list[int]]:
    """Groups of people who share something a similar name needs beside it: a company domain or a phone."""
    blocks: dict[str, set[int]] = defaultdict(set)
    for pid, person in facts.items():
        for domain in person.company_domains:
            blocks[f"domain:{domain}"].add(pid)
        for phone in person.phones:
            digits = phone.lstrip("+")
            blocks[f"tail:{digits[-7:]}"].add(pid)
            if len(digits) >= 10:
                blocks[f"head:{digits[:-2]}"].add(pid)
    for members in blocks.values():
        if len(members) < 2:
            continue
        if len(members) <= MAX_BLOCK:
            yield sorted(members)
            continue
        yield from _split(sorted(members), facts)


def _split(members: list[int], facts: dict[int, PersonFacts]) -> Iterable[list[int]]:
    """A big block (a large company's domain) in groups by last-name initial, then also first-name initial.

    Pairs whose names differ in an initial are missed there; with a similar name required, that is rare.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for pid in members:
        groups[name_key(facts[pid].last_name)[:1]].append(pid)
    for initial, group in groups.items():
        if len(group) <= MAX_BLOCK:
            if len(group) > 1:
                yield group
            continue
        finer: dict[str, list[int]] = defaultdict(list)
        for pid in group:
            finer[initial + name_key(facts[pid].first_name)[:1]].append(pid)
        yield from (g for g in finer.values() if len(g) > 1)


def _scan(facts: dict[int, PersonFacts], threshold: float) -> dict[tuple[int, int], tuple[float, list[Evidence]]]:
    found: dict[tuple[int, int], tuple[float, list[Evidence]]] = {}
    seen: set[tuple[int, int]] = set()
    for members in _blocks(facts):
        for a, b in combinations(members, 2):
            if (a, b) in seen:
                continue
            seen.add((a, b))
            # Without a similar name the scan has nothing to suggest (it never sees a shared identifier).
            if not name_similarity(facts[a], facts[b], threshold):
                continue
            evidence = pair_evidence(facts[a], facts[b], name_threshold=threshold)
            score = assess(evidence)
            if score is not None:
                found[(a, b)] = (score, evidence)
    return found


def compute_suggestions(engine: sa.Engine, clock: Clock, threshold: float = NAME_THRESHOLD) -> ScanResult:
    """Scan active people for pairs worth suggesting and bring the stored open suggestions up to date."""
    if not 0 <= threshold <= 100:
        raise InvalidInputError("The name similarity threshold is a number from 0 to 100.", field="threshold")
    now = clock.now()
    # Score outside the write transaction, so imports and merges are not kept waiting by the comparison.
    with read_connection(engine) as conn:
        facts = _facts(conn)
    found = _scan(facts, threshold)
    with engine.begin() as conn:
        stored = {
            (row.person_a_id, row.person_b_id): row
            for row in conn.execute(
                sa.select(
                    merge_suggestions.c.id,
                    merge_suggestions.c.person_a_id,
                    merge_suggestions.c.person_b_id,
                    merge_suggestions.c.status,
                    merge_suggestions.c.evidence,
                )
            )
        }
        new = refreshed = withdrawn = 0
        for pair, (score, evidence) in found.items():
            row = stored.get(pair)
            if row is None:
                new += store_suggestion(conn, *pair, evidence, now=now)
            elif row.status == "open":
                # Keep what the import saw (a shared phone in a source record); the scan cannot see it.
                kept = [e for e in from_json(row.evidence) if e.kind in STRONG]
                merged = kept + [e for e in evidence if e not in kept]
                conn.execute(
                    merge_suggestions.update()
                    .where(merge_suggestions.c.id == row.id)
                    .values(**_values(merged, assess(merged) or score))
                )
                refreshed += 1
        for pair, row in stored.items():
            if row.status != "open" or pair in found:
                continue
            if not any(e.kind in STRONG for e in from_json(row.evidence)):
                conn.execute(merge_suggestions.delete().where(merge_suggestions.c.id == row.id))
                withdrawn += 1
        open_total = _count(conn, "open")
    return ScanResult(new=new, refreshed=refreshed, withdrawn=withdrawn, open_total=open_total)


_a, _b = people.alias("person_a"), people.alias("person_b")


def _with_names() -> sa.Select[Any]:
    """Suggestions with both people's names, as the page, the CLI and the API show them."""
    return (
        sa.select(
            merge_suggestions,
            _a.c.first_name.label("a_first"),
            _a.c.last_name.label("a_last"),
            _b.c.first_name.label("b_first"),
            _b.c.last_name.label("b_last"),
        )
        .join(_a, _a.c.id == merge_suggestions.c.person_a_id)
        .join(_b, _b.c.id == merge_suggestions.c.person_b_id)
    )


def _query(status: str) -> sa.Select[Any]:
    query = _with_names().where(merge_suggestions.c.status == status)
    if status == "open":
        # A merge or erasure elsewhere makes a suggestion stale: only pairs of two active people count.
        query = query.where(_a.c.status == "active", _b.c.status == "active")
    return query


def _count(conn: sa.Connection, status: str) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).select_from(_query(status).subquery())) or 0)


def _name(first: str | None, last: str | None) -> str:
    return " ".join(p for p in (first, last) if p)


def _suggestion(row: Any) -> Suggestion:
    evidence = tuple(from_json(row["evidence"]))
    return Suggestion(
        id=row["id"],
        person_a_id=row["person_a_id"],
        person_a_name=_name(row["a_first"], row["a_last"]),
        person_b_id=row["person_b_id"],
        person_b_name=_name(row["b_first"], row["b_last"]),
        score=row["score"],
        status=row["status"],
        evidence=evidence,
        reason=summary(evidence) if evidence else row["reason"],
        batch_id=row["batch_id"],
        created_at=row["created_at"],
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
    )


def list_suggestions(engine: sa.Engine, status: str = "open", *, page: int = 1, per_page: int = 50) -> SuggestionPage:
    """One page of suggestions with that status, strongest first, and how many there are in all."""
    if status not in STATUSES:
        raise InvalidInputError(f"Status is one of {', '.join(STATUSES)}.", field="status")
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        raise InvalidInputError(f"page starts at 1; per_page is 1 to {MAX_PER_PAGE}.", field="page")
    with read_connection(engine) as conn:
        total = _count(conn, status)
        rows = conn.execute(
            _query(status)
            .order_by(merge_suggestions.c.score.desc(), merge_suggestions.c.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).mappings()
        items = [_suggestion(r) for r in rows]
    return SuggestionPage(total=total, page=page, per_page=per_page, items=items)


def _get(conn: sa.Connection, suggestion_id: int) -> Suggestion:
    query = _with_names().where(merge_suggestions.c.id == suggestion_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFoundError(f"No duplicate suggestion with id {suggestion_id}.", id=suggestion_id)
    return _suggestion(row)


def get_suggestion(engine: sa.Engine, suggestion_id: int) -> Suggestion:
    with read_connection(engine) as conn:
        return _get(conn, suggestion_id)


def dismiss_suggestion(uow: UnitOfWork, suggestion_id: int) -> Suggestion:
    """Mark a pair as not the same person; a re-scan never suggests it again. Dismissing twice is harmless."""
    conn = uow.conn
    current = _get(conn, suggestion_id)
    if current.status == "merged":
        raise ConflictError(
            f"Suggestion {suggestion_id} was merged; unmerge the people to reopen it first.", id=suggestion_id
        )
    if current.status == "open":
        conn.execute(
            merge_suggestions.update()
            .where(merge_suggestions.c.id == suggestion_id, merge_suggestions.c.status == "open")
            .values(status="dismissed", decided_at=uow.now, decided_by=uow.actor.label)
        )
        uow.audit(
            "contacts.suggestion_dismissed",
            target=f"suggestion {suggestion_id}",
            target_id=suggestion_id,
            details={"person_a": current.person_a_id, "person_b": current.person_b_id},
        )
    return _get(conn, suggestion_id)
