"""Append an event in the caller's transaction, so the log never disagrees with the state it describes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.db.bulk import bulk_insert
from herald.db.event_tables import events


@dataclass(frozen=True)
class Origin:
    """What caused an event: ("campaign", 12), ("journey", 3), ("incident", 7), ("import", 41)…"""

    type: str
    id: int | None = None


def append_event(
    conn: sa.Connection,
    kind: str,
    *,
    at: dt.datetime,
    person_id: int | None = None,
    channel: str | None = None,
    message_id: int | None = None,
    origin: Origin | None = None,
    data: Mapping[str, Any] | None = None,
) -> int:
    """Insert one event row; call it inside the transaction that makes the change it reports."""
    event_id = conn.scalar(
        events.insert()
        .values(
            kind=kind,
            person_id=person_id,
            channel=channel,
            message_id=message_id,
            origin_type=origin.type if origin else None,
            origin_id=origin.id if origin else None,
            occurred_at=at,
            data=dict(data or {}),
        )
        .returning(events.c.id)
    )
    assert event_id is not None
    return int(event_id)


def append_events(conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many events at once (an import's consent changes): one executemany, no ids read back.

    Each row has `kind`, `occurred_at` and optionally `person_id`, `channel`, `message_id`, `origin`, `data`.
    """
    if not rows:
        return
    values = []
    for row in rows:
        origin = row.get("origin")
        values.append(
            (
                row["kind"],
                row.get("person_id"),
                row.get("channel"),
                row.get("message_id"),
                origin.type if origin else None,
                origin.id if origin else None,
                row["occurred_at"],
                dict(row.get("data") or {}),
            )
        )
    columns = ("kind", "person_id", "channel", "message_id", "origin_type", "origin_id", "occurred_at", "data")
    bulk_insert(conn, events, columns, values)


def recent_events(
    conn: sa.Connection, *, person_id: int, channel: str, kinds: Sequence[str], limit: int = 1000
) -> list[tuple[str, dict[str, Any]]]:
    """A person's latest events of these kinds on one channel, newest first, as (kind, data)."""
    rows = conn.execute(
        sa.select(events.c.kind, events.c.data)
        .where(events.c.person_id == person_id, events.c.channel == channel, events.c.kind.in_(list(kinds)))
        .order_by(events.c.id.desc())
        .limit(limit)
    )
    return [(str(kind), dict(data or {})) for kind, data in rows]
