"""A campaign's audience: the segment's definition frozen at launch, and the frozen set (campaign_recipients)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from herald.campaigns.store import campaign_recipients
from herald.db.engine import dialect_insert
from herald.db.types import UTCDateTime
from herald.segments.audience import Definition, audience_select, parse_definition
from herald.segments.service import get_segment

LAUNCH, NEWCOMERS = "launch", "newcomers"


def segment_definition(conn: sa.Connection, segment_id: int) -> Mapping[str, Any]:
    """The segment's definition as JSON, to freeze on the campaign (what the launch selects, whatever edits come)."""
    return definition_json(get_segment(conn, segment_id).definition)


def definition_json(definition: Definition) -> Mapping[str, Any]:
    return definition.as_data()


def live_select(definition: Mapping[str, Any], now: dt.datetime) -> sa.Select[tuple[int]]:
    """The people matching a (JSON) definition at `now`: one `person_id` column."""
    return audience_select(parse_definition(definition), now=now)


def freeze(
    conn: sa.Connection, campaign_id: int, definition: Mapping[str, Any], *, batch: int, origin: str, now: dt.datetime
) -> int:
    """INSERT … SELECT the matching people not yet in the campaign's set; returns how many joined (this batch).

    Set-based (one statement whatever the size); ON CONFLICT DO NOTHING keeps each person once, so a person the
    segment matches twice, or who is already in the set, is not added again."""
    matching = live_select(definition, now).subquery()
    source = sa.select(
        sa.literal(campaign_id, sa.BigInteger),
        matching.c.person_id,
        sa.literal(origin, sa.String),
        sa.literal(batch, sa.Integer),
        sa.literal(now, UTCDateTime),
    ).where(sa.true())  # SQLite needs a WHERE before ON CONFLICT in INSERT … SELECT (a parsing ambiguity)
    statement = (
        dialect_insert(conn, campaign_recipients)
        .from_select(["campaign_id", "person_id", "origin", "batch", "added_at"], source)
        .on_conflict_do_nothing(index_elements=["campaign_id", "person_id"])
    )
    conn.execute(statement)
    return batch_size(conn, campaign_id, batch)


def batch_size(conn: sa.Connection, campaign_id: int, batch: int) -> int:
    r = campaign_recipients.c
    query = sa.select(sa.func.count()).where(r.campaign_id == campaign_id, r.batch == batch)
    return int(conn.execute(query).scalar_one())


def total_size(conn: sa.Connection, campaign_id: int) -> int:
    r = campaign_recipients.c
    return int(conn.execute(sa.select(sa.func.count()).where(r.campaign_id == campaign_id)).scalar_one())


def next_people(conn: sa.Connection, campaign_id: int, batch: int, after: int, limit: int) -> list[int]:
    """The batch's next people by id after `after` (the checkpointed cursor)."""
    r = campaign_recipients.c
    query = (
        sa.select(r.person_id)
        .where(r.campaign_id == campaign_id, r.batch == batch, r.person_id > after)
        .order_by(r.person_id)
        .limit(limit)
    )
    return [int(pid) for pid in conn.execute(query).scalars()]


def frozen_page(conn: sa.Connection, campaign_id: int, *, offset: int, limit: int) -> list[int]:
    r = campaign_recipients.c
    query = (
        sa.select(r.person_id)
        .where(r.campaign_id == campaign_id)
        .order_by(r.batch, r.person_id)
        .offset(offset)
        .limit(limit)
    )
    return [int(pid) for pid in conn.execute(query).scalars()]


def live_page(
    conn: sa.Connection,
    definition: Mapping[str, Any],
    now: dt.datetime,
    *,
    offset: int = 0,
    limit: int,
    after: int | None = None,
) -> list[int]:
    """People matching the definition at `now`, by id, one slice (duplicates in the match counted once).
    `after`: only ids above it (a reader going through the whole match passes the last id it got instead of
    an offset, so each page does not evaluate and skip every page before it)."""
    matching = live_select(definition, now).subquery()
    query = sa.select(matching.c.person_id).distinct().order_by(matching.c.person_id).offset(offset).limit(limit)
    if after is not None:
        query = query.where(matching.c.person_id > after)
    return [int(pid) for pid in conn.execute(query).scalars()]
