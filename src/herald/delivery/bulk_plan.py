"""Bulk planning: the rules, recipients, recent sends and ledger inserts for thousands of messages at once."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import load_events
from herald.contacts.store import people_for_planning
from herald.db.bulk import insert_returning
from herald.db.delivery_tables import messages
from herald.db.runtime import Runtime
from herald.delivery import ledger
from herald.delivery.decide import quiet_policy
from herald.delivery.planner import PlannedMessage, Recipient, Rules, Skip
from herald.delivery.settings import DeliverySettings, delivery_settings
from herald.schedule.caps import SendRecord

# Ids (or keys) per IN list: far under SQLite's bind-variable limit, few enough round trips per 100,000.
CHUNK = 900

# Every column enqueue writes, in one fixed order (the multi-row VALUES lists follow it).
_COLUMNS = (
    "person_id",
    "message_key",
    "message_class",
    "status",
    "status_rank",
    "hold_reason",
    "releasable",
    "channels",
    "plan_index",
    "skips",
    "addresses",
    "content",
    "template_id",
    "template_version",
    "zones",
    "zone_source",
    "quiet_zone",
    "quiet_window",
    "variables",
    "campaign_id",
    "available_at",
    "created_at",
    "updated_at",
)


def plan_rules(runtime: Runtime, delivery: DeliverySettings | None = None) -> Rules:
    """The planner's rules for this process: quiet hours, the account's zone and the frequency caps."""
    delivery = delivery or delivery_settings(runtime)
    return Rules(
        quiet_hours=quiet_policy(delivery, runtime.settings.default_region),
        account_zone=delivery.default_timezone,
        caps=delivery.cap_rules(),
    )


def chunks(values: Iterable[int], size: int = CHUNK) -> Iterator[list[int]]:
    """Distinct values in slices of `size`, in first-seen order."""
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), size):
        yield distinct[start : start + size]


def load_recipients(conn: sa.Connection, person_ids: Sequence[int]) -> dict[int, Recipient]:
    """What the planner needs of each active person (fields, addresses, consent events): three queries per
    900 people, none per person. Merged, erased and unknown ids are absent from the result."""
    out: dict[int, Recipient] = {}
    for part in chunks(person_ids):
        profiles = people_for_planning(conn, part)
        events = load_events(conn, list(profiles))
        for pid, profile in profiles.items():
            out[pid] = Recipient(
                person_id=pid,
                fields=profile.fields,
                emails=profile.emails,
                phones=profile.phones,
                consent=tuple(events.get(pid, ())),
            )
    return out


def recent_sends(
    conn: sa.Connection, person_ids: Sequence[int], now: dt.datetime, *, window: dt.timedelta | None = None
) -> dict[int, list[SendRecord]]:
    """Each person's sends that count against frequency caps, across every campaign and API send: rows not
    failed and not held for good, stamped with their send time (or planned time). `window`: only those after
    `now - window` (the longest cap's window; planned sends in the future always count)."""
    c = messages.c
    at = sa.func.coalesce(c.sent_at, c.available_at)
    out: dict[int, list[SendRecord]] = {pid: [] for pid in dict.fromkeys(person_ids)}
    for part in chunks(person_ids):
        query = sa.select(c.person_id, c.channels, c.plan_index, c.message_class, c.sent_at, c.available_at).where(
            c.person_id.in_(part),
            c.status != ledger.Status.FAILED.value,
            # A hold that never ends by itself (no consent, missing variable, …) will not be sent.
            sa.or_(c.status != ledger.Status.HELD.value, c.releasable.is_(True)),
        )
        if window is not None:
            query = query.where(at > now - window)
        for pid, channels, plan_index, message_class, sent_at, available_at in conn.execute(query):
            out[pid].append(SendRecord(channels[plan_index], message_class, sent_at or available_at))
    return out


def enqueue_many(conn: sa.Connection, rows: Sequence[ledger.NewMessage], now: dt.datetime) -> list[ledger.Enqueued]:
    """Insert many ledger rows in the caller's transaction; the same as `ledger.enqueue` for each, in order.

    One multi-row `INSERT … ON CONFLICT (person_id, message_key) DO NOTHING RETURNING` per slice, then one
    look-up per 900 keys that were already taken (`created=False` with the existing id). The same (person,
    key) twice in `rows` is one row: the first occurrence inserts it, the later ones report it as existing.
    """
    first: dict[tuple[int, str], int] = {}  # (person, key) → index of its first occurrence
    values: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        pair = (row.person_id, row.message_key)
        if pair in first:
            continue
        first[pair] = index
        values.append(ledger.row_values(row, now))
    if conn.dialect.name == "postgresql":
        inserted = _insert_postgres(conn, values)
    else:
        inserted = insert_returning(
            conn,
            messages,
            _COLUMNS,
            [tuple(record[c] for c in _COLUMNS) for record in values],
            conflict=("person_id", "message_key"),
            returning=("id", "person_id", "message_key"),
        )
    created = {(int(pid), str(key)): int(mid) for mid, pid, key in inserted}
    existing = _existing_ids(conn, [pair for pair in first if pair not in created])
    out = []
    for index, row in enumerate(rows):
        pair = (row.person_id, row.message_key)
        if pair in created and first[pair] == index:
            out.append(ledger.Enqueued(created[pair], created=True))
        else:
            out.append(ledger.Enqueued(created.get(pair) or existing[pair], created=False))
    return out


# All the rows as one JSON document the server turns into `messages` records (each column typed by the table):
# one json.dumps in C instead of psycopg dumping 23 arrays element by element (Jsonb per JSON value), which cost
# the client more than the insert cost the server.
_PG_INSERT = (
    f"INSERT INTO messages ({', '.join(_COLUMNS)}) "  # noqa: S608 - our own column names
    f"SELECT {', '.join(_COLUMNS)} FROM json_populate_recordset(NULL::messages, %s::json) "
    "ON CONFLICT (person_id, message_key) DO NOTHING RETURNING id, person_id, message_key"
)


def _insert_postgres(conn: sa.Connection, records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    if not records:
        return []
    document = json.dumps(records, default=_json_instant)
    return [tuple(r) for r in conn.exec_driver_sql(_PG_INSERT, (document,))]


def _json_instant(value: Any) -> str:
    # timestamptz reads ISO 8601 with its offset; a naive datetime is refused as UTCDateTime refuses it.
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC datetimes only")
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _existing_ids(conn: sa.Connection, pairs: Sequence[tuple[int, str]]) -> dict[tuple[int, str], int]:
    c = messages.c
    found: dict[tuple[int, str], int] = {}
    for start in range(0, len(pairs), CHUNK // 2):  # two bind variables per pair
        part = pairs[start : start + CHUNK // 2]
        query = sa.select(c.id, c.person_id, c.message_key).where(sa.tuple_(c.person_id, c.message_key).in_(part))
        for mid, pid, key in conn.execute(query):
            found[(int(pid), str(key))] = int(mid)
    return found


def ledger_row(
    planned: PlannedMessage | Skip,
    *,
    person_id: int,
    message_key: str,
    message_class: str,
    channels: Sequence[str],
    now: dt.datetime,
    render_at_claim: bool = False,
    **reference: Any,
) -> ledger.NewMessage:
    """The ledger row for one plan, for every intake (single, batch, campaign). `reference`: template_id,
    template_version, campaign_id. With `render_at_claim` the row keeps the plan's variables instead of
    rendered content (the worker renders it from the pinned version)."""
    common: Mapping[str, Any] = {
        "person_id": person_id,
        "message_key": message_key,
        "message_class": message_class,
        **reference,
    }
    if isinstance(planned, Skip):
        # Nothing can go, but the row still records the decision (and keeps the key taken).
        return ledger.NewMessage(
            **common,
            status="held",
            channels=list(channels),
            addresses={},
            content={},
            available_at=now,
            hold_reason=planned.reason,
            skips=[{"channel": c, "reason": r} for c, r in planned.skips],
        )
    return ledger.NewMessage(
        **common,
        status=planned.status,
        channels=planned.channels,
        addresses=planned.addresses,
        content={} if render_at_claim else planned.content,
        variables=planned.variables if render_at_claim else None,
        available_at=planned.available_at,
        zones=planned.zones,
        zone_source=planned.zone_source,
        hold_reason=planned.hold_reason,
        releasable=planned.releasable,
        skips=[{"channel": c, "reason": r} for c, r in planned.skips],
        quiet_zone=planned.quiet_zone,
        quiet_window=planned.quiet_window,
    )
