"""Duplicate suggestions: exact household-phone pairs from imports plus blocked fuzzy name matches."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import sqlalchemy as sa
from rapidfuzz import fuzz

from herald.contacts.identity import name_key
from herald.core.clock import Clock
from herald.db.engine import dialect_insert, read_connection
from herald.db.tables import identifiers, merge_suggestions, people

MAX_BLOCK = 400  # pairs grow with the square of a block; big blocks are split by name prefix
FREE_MAIL = {
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "icloud.com",
    "aol.com",
    "gmx.de",
    "web.de",
}


@dataclass(frozen=True, slots=True)
class Suggestion:
    id: int
    person_a_id: int
    person_b_id: int
    score: float
    reason: str
    status: str


def _full_name(row: Any) -> str:
    return " ".join(p for p in (row["first_name"], row["last_name"]) if p).strip()


def _blocks(conn: sa.Connection) -> tuple[dict[str, set[int]], dict[int, Any]]:
    blocks: dict[str, set[int]] = defaultdict(set)
    names = {
        row["id"]: row
        for row in conn.execute(
            sa.select(people.c.id, people.c.first_name, people.c.last_name).where(people.c.status == "active")
        ).mappings()
    }
    for pid, row in names.items():
        last, first = name_key(row["last_name"]), name_key(row["first_name"])
        if last and first:
            blocks[f"name:{last[:3]}{first[:1]}"].add(pid)
    for pid, kind, key in conn.execute(sa.select(identifiers.c.person_id, identifiers.c.kind, identifiers.c.key)):
        if pid not in names:
            continue
        if kind == "email":
            domain = key.rpartition("@")[2]
            if domain not in FREE_MAIL:
                blocks[f"domain:{domain}"].add(pid)
        elif kind == "phone":
            blocks[f"phone:{key[:8]}"].add(pid)
    return {k: v for k, v in blocks.items() if len(v) > 1}, names


def compute_suggestions(engine: sa.Engine, clock: Clock, threshold: float = 88.0) -> int:
    """Score pairs within blocks with rapidfuzz and store new suggestions; returns how many were new."""
    now, new = clock.now(), 0
    with engine.begin() as conn:
        blocks, names = _blocks(conn)
        seen: dict[tuple[int, int], tuple[float, str]] = {}
        for block, members in blocks.items():
            ordered = sorted(members)[:MAX_BLOCK]
            for a, b in combinations(ordered, 2):
                name_a, name_b = _full_name(names[a]), _full_name(names[b])
                if not name_a or not name_b:
                    continue
                score = float(fuzz.token_sort_ratio(name_a.casefold(), name_b.casefold()))
                if score >= threshold and score > seen.get((a, b), (0.0, ""))[0]:
                    kind, _, value = block.partition(":")
                    seen[(a, b)] = (score, f"similar names ({score:.0f}) sharing {kind} {value}")
        for (a, b), (score, reason) in seen.items():
            stmt = dialect_insert(conn, merge_suggestions).values(
                person_a_id=a, person_b_id=b, score=score, reason=reason, status="open", created_at=now
            )
            new += conn.execute(stmt.on_conflict_do_nothing()).rowcount or 0
    return new


def list_suggestions(engine: sa.Engine, status: str = "open", limit: int = 200) -> list[Suggestion]:
    with read_connection(engine) as conn:
        rows = conn.execute(
            sa.select(merge_suggestions)
            .where(merge_suggestions.c.status == status)
            .order_by(merge_suggestions.c.score.desc(), merge_suggestions.c.id)
            .limit(limit)
        ).mappings()
        return [
            Suggestion(r["id"], r["person_a_id"], r["person_b_id"], r["score"], r["reason"], r["status"]) for r in rows
        ]


def dismiss_suggestion(engine: sa.Engine, suggestion_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            merge_suggestions.update().where(merge_suggestions.c.id == suggestion_id).values(status="dismissed")
        )
