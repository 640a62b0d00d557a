"""The append-only consent and suppression ledger: record events with provenance, read them back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, cast

import sqlalchemy as sa

from herald.consent.policy import (
    ALL_PURPOSES,
    CHANNELS,
    KINDS,
    OPT_OUTS,
    PURPOSES,
    ConsentEvent,
    Verdict,
    can_contact,
    fold_states,
)
from herald.core.errors import InvalidInputError
from herald.db.bulk import bulk_insert
from herald.db.consent_tables import consent_events, consent_states
from herald.db.engine import dialect_insert
from herald.db.event_log import append_events

# Bind variables per statement stay well below SQLite's limit.
CHUNK = 5000

# Consent changes the event log reports (tracking, journeys and scoring subscribe to them). Bounces and
# complaints are reported by delivery, where they happen, with the message they belong to.
LOGGED_KINDS = ("subscribed", "unsubscribed")


def check_event(channel: str, purpose: str, kind: str) -> None:
    if channel not in CHANNELS:
        raise InvalidInputError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}", field="channel")
    if purpose not in (*PURPOSES, ALL_PURPOSES):
        raise InvalidInputError(f"unknown purpose {purpose!r}", field="purpose")
    if kind not in KINDS:
        raise InvalidInputError(f"unknown consent event {kind!r}; use one of {', '.join(KINDS)}", field="kind")


def event_row(
    person_id: int,
    channel: str,
    purpose: str,
    kind: str,
    *,
    source: str,
    now: dt.datetime,
    occurred_at: dt.datetime | None = None,
    explicit: bool = False,
    batch_id: int | None = None,
    note: str | None = None,
) -> dict[str, object]:
    """A consent_events row ready for a (bulk) insert."""
    check_event(channel, purpose, kind)
    return {
        "person_id": person_id,
        "channel": channel,
        "purpose": purpose,
        "kind": kind,
        "explicit": explicit,
        "source": source,
        "batch_id": batch_id,
        "note": note,
        "occurred_at": occurred_at or now,
        "recorded_at": now,
    }


def record_events(conn: sa.Connection, rows: Sequence[dict[str, object]]) -> None:
    """Append consent rows and, in the same transaction, an event per subscribe or unsubscribe.

    Both go to the database as one executemany each: an import records thousands per chunk.
    """
    if not rows:
        return
    columns = tuple(rows[0])
    bulk_insert(conn, consent_events, columns, [tuple(row[c] for c in columns) for row in rows])
    append_events(
        conn,
        [
            {
                "kind": row["kind"],
                "occurred_at": row["occurred_at"],
                "person_id": row["person_id"],
                "channel": row["channel"],
                "data": {"purpose": row["purpose"], "source": row["source"], "explicit": bool(row["explicit"])},
            }
            for row in rows
            if row["kind"] in LOGGED_KINDS
        ],
    )
    refresh_states(conn, {cast(int, row["person_id"]) for row in rows}, appended=True)


def refresh_states(conn: sa.Connection, person_ids: Iterable[int], *, appended: bool = False) -> None:
    """Rewrite the current-state rows of these people from their events, in the caller's transaction.

    Every write to consent_events calls this, so `consent_states` is what `policy.consent_state` says
    for the events committed with it: the fold is the policy's own rule (`fold_states`), not a second
    one in SQL. With `appended` (the caller only added events) no pair can fall back to "unknown", so
    rows are upserted without deleting first. The events are read without their instants (the
    database orders them), which keeps an import chunk's refresh to a few cheap statements.
    """
    ids = sorted(set(person_ids))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        query = (
            sa.select(
                consent_events.c.person_id,
                consent_events.c.channel,
                consent_events.c.purpose,
                consent_events.c.kind,
                consent_events.c.explicit,
            )
            .where(consent_events.c.person_id.in_(chunk))
            .order_by(consent_events.c.occurred_at, consent_events.c.id)
        )
        histories: dict[int, list[tuple[str, str, str, bool]]] = {}
        for pid, channel, purpose, kind, explicit in conn.execute(query):
            histories.setdefault(pid, []).append((channel, purpose, kind, explicit))
        if not appended:
            conn.execute(consent_states.delete().where(consent_states.c.person_id.in_(chunk)))
        rows = [
            {"person_id": pid, "channel": channel, "purpose": purpose, "state": state}
            for pid, history in histories.items()
            for (channel, purpose), state in fold_states(history).items()
            if channel in CHANNELS
        ]
        if rows:
            insert = dialect_insert(conn, consent_states)
            if appended:
                insert = insert.on_conflict_do_update(
                    index_elements=["person_id", "channel", "purpose"], set_={"state": insert.excluded.state}
                )
            conn.execute(insert, rows)


def rebuild_states(conn: sa.Connection) -> int:
    """Recompute every current-state row from the ledger (the migration's backfill, a repair); returns people."""
    conn.execute(consent_states.delete())
    ids = list(conn.scalars(sa.select(consent_events.c.person_id).distinct().order_by(consent_events.c.person_id)))
    refresh_states(conn, ids)
    return len(ids)


# Ids per statement for load_events: under SQLite's bind-variable limit on any build.
_EVENTS_CHUNK = 900


def load_events(conn: sa.Connection, person_ids: Iterable[int]) -> dict[int, list[ConsentEvent]]:
    """Each person's consent events, oldest first (by instant, then id).

    Read on the driver, one statement per 900 people: a campaign plans 100,000 people, and SQLAlchemy's
    per-value result processing cost more than the query."""
    ids = list(dict.fromkeys(person_ids))
    out: dict[int, list[ConsentEvent]] = {pid: [] for pid in ids}
    sqlite = conn.dialect.name == "sqlite"
    instants: dict[Any, dt.datetime] = {}  # many events share an instant (an import, a form): convert each once
    for start in range(0, len(ids), _EVENTS_CHUNK):
        part = ids[start : start + _EVENTS_CHUNK]
        where, params = (f"IN ({', '.join('?' * len(part))})", tuple(part)) if sqlite else ("= ANY(%s)", (part,))
        sql = (
            "SELECT person_id, channel, purpose, kind, occurred_at, explicit, source FROM consent_events "  # noqa: S608 - our own names
            f"WHERE person_id {where} ORDER BY occurred_at, id"
        )
        for pid, channel, purpose, kind, occurred, explicit, source in conn.exec_driver_sql(sql, params).fetchall():
            at = instants.get(occurred)
            if at is None:
                at = instants[occurred] = _utc(occurred)
            out[pid].append(ConsentEvent(channel, purpose, kind, at, bool(explicit), source))
    return out


def _utc(value: dt.datetime | str) -> dt.datetime:
    # What UTCDateTime returns: SQLite keeps naive UTC text, PostgreSQL an aware timestamp.
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def consent_summary(events: Sequence[ConsentEvent]) -> dict[str, Verdict]:
    """Verdict per 'channel:purpose' for display and export."""
    return {f"{c}:{p}": can_contact(events, c, p) for c in CHANNELS for p in PURPOSES}


# The contacts slice moves and removes people; these are the only ways it touches their consent rows
# (the consent slice owns `consent_events`: see the import-linter contracts in pyproject.toml).


def event_ids(conn: sa.Connection, person_id: int) -> list[int]:
    """The ids of a person's consent events (a merge snapshots them to move them back on unmerge)."""
    return list(conn.scalars(sa.select(consent_events.c.id).where(consent_events.c.person_id == person_id)))


def move_events(conn: sa.Connection, from_id: int, to_id: int, *, ids: Sequence[int] | None = None) -> None:
    """Reassign a person's events (all of them, or those of `ids` still on `from_id`) to another person."""
    stmt = consent_events.update().where(consent_events.c.person_id == from_id).values(person_id=to_id)
    if ids is None:
        conn.execute(stmt)
    else:
        for start in range(0, len(ids), CHUNK):  # bounded bind variables per statement
            conn.execute(stmt.where(consent_events.c.id.in_(ids[start : start + CHUNK])))
    refresh_states(conn, (from_id, to_id))


def event_ids_of(conn: sa.Connection, person_ids: Iterable[int]) -> dict[int, list[int]]:
    """event_ids() for many people at once: person id → their consent event ids."""
    ids = list(person_ids)
    out: dict[int, list[int]] = {pid: [] for pid in ids}
    for start in range(0, len(ids), 5000):  # bounded bind variables per statement
        query = sa.select(consent_events.c.person_id, consent_events.c.id).where(
            consent_events.c.person_id.in_(ids[start : start + 5000])
        )
        for pid, event_id in conn.execute(query):
            out[pid].append(event_id)
    return out


def move_all_events(conn: sa.Connection, moves: Sequence[tuple[int, int]]) -> None:
    """move_events() for many (from, to) pairs, in their order, as one executemany (an import's merges)."""
    if moves:
        stmt = (
            consent_events.update()
            .where(consent_events.c.person_id == sa.bindparam("_from"))
            .values(person_id=sa.bindparam("_to"))
        )
        conn.execute(stmt, [{"_from": a, "_to": b} for a, b in moves])
        refresh_states(conn, {pid for pair in moves for pid in pair})


def copy_opt_outs(conn: sa.Connection, from_id: int, to_id: int, *, since: dt.datetime) -> None:
    """Copy the opt-outs recorded on `from_id` since `since` to `to_id` (an unmerge never re-opens a channel)."""
    rows = conn.execute(
        sa.select(consent_events).where(
            consent_events.c.person_id == from_id,
            consent_events.c.kind.in_(OPT_OUTS),
            consent_events.c.recorded_at >= since,
        )
    ).mappings()
    copies = [{k: v for k, v in r.items() if k != "id"} | {"person_id": to_id} for r in rows]
    if copies:
        conn.execute(consent_events.insert(), copies)
        refresh_states(conn, (to_id,))


def person_history(conn: sa.Connection, person_id: int) -> list[dict[str, Any]]:
    """A person's consent events as recorded, for their timeline."""
    query = sa.select(consent_events).where(consent_events.c.person_id == person_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def delete_batch_events(conn: sa.Connection, batch_id: int) -> None:
    """Remove what an import batch recorded (import-undo)."""
    touched = list(
        conn.scalars(sa.select(consent_events.c.person_id).where(consent_events.c.batch_id == batch_id).distinct())
    )
    conn.execute(consent_events.delete().where(consent_events.c.batch_id == batch_id))
    refresh_states(conn, touched)


def delete_people_events(conn: sa.Connection, person_ids: sa.Select[tuple[int]]) -> None:
    """Remove the events of people about to be deleted; `person_ids` is a subquery, not a list (bind limits)."""
    conn.execute(consent_states.delete().where(consent_states.c.person_id.in_(person_ids)))
    conn.execute(consent_events.delete().where(consent_events.c.person_id.in_(person_ids)))


def suppress_address(
    conn: sa.Connection,
    person_id: int,
    channel: str,
    kind: str,
    *,
    source: str,
    details: str,
    now: dt.datetime,
) -> None:
    """Close one person's address on one channel for every purpose, in the caller's transaction.

    An append-only event like any other (so an explicit re-subscription is still the only way back);
    `details` keeps the evidence: the address, the SMTP reply or the provider's error code.
    """
    record_events(conn, [event_row(person_id, channel, ALL_PURPOSES, kind, source=source, now=now, note=details)])
