"""Read-only ledger queries shared by the CLI, the API and the pages: filtered lists, one message, a person's."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from herald.core.channels import CHANNELS, MESSAGE_CLASSES, SUMMARY_FIELDS
from herald.core.errors import InvalidInputError, NotFoundError
from herald.db.delivery_tables import messages, provider_events
from herald.db.engine import read_connection
from herald.delivery import ledger
from herald.delivery.reasons import describe_reason
from herald.delivery.render_at_claim import TemplateCache, needs_render, render_row
from herald.templates.render import Held

STATUSES = tuple(ledger.STATUS_RANK)
MAX_LIMIT = 500
SUMMARY_LENGTH = 120
# Internal bookkeeping nobody reading a message needs (and the fencing token is nobody's business).
_HIDDEN = ("lease_token", "status_rank", "content")
_REASON = re.compile(r"[a-z][a-z_]{0,63}")


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Every field optional; set ones are combined with AND. `reason` is a reason kind (`quiet_hours`)."""

    status: str | None = None
    channel: str | None = None
    message_class: str | None = None
    reason: str | None = None
    person_id: int | None = None

    def check(self) -> MessageFilter:
        """The same filter, or InvalidInputError naming the field that is not one of the known values."""
        for name, value, allowed in (
            ("status", self.status, STATUSES),
            ("channel", self.channel, CHANNELS),
            ("class", self.message_class, MESSAGE_CLASSES),
        ):
            if value is not None and value not in allowed:
                raise InvalidInputError(f"{name} must be one of {', '.join(allowed)}", field=name, value=value)
        if self.reason is not None and not _REASON.fullmatch(self.reason):
            raise InvalidInputError(
                "reason must be a reason kind such as quiet_hours or no_consent", field="reason", value=self.reason
            )
        return self


@dataclass(frozen=True, slots=True)
class MessagePage:
    total: int  # every row the filter matches, not only this page's
    messages: list[dict[str, Any]]


def list_messages(engine: sa.Engine, filters: MessageFilter, *, limit: int = 50, offset: int = 0) -> MessagePage:
    """Newest first (highest id: ids grow with creation, and the primary key orders them without a sort)."""
    filters.check()
    if not 1 <= limit <= MAX_LIMIT or offset < 0:
        raise InvalidInputError(f"limit must be 1-{MAX_LIMIT} and offset 0 or more", field="limit")
    with read_connection(engine) as conn:
        conditions = _conditions(conn, filters)
        total = conn.scalar(sa.select(sa.func.count()).select_from(messages).where(*conditions)) or 0
        query = (
            sa.select(*(c for c in messages.c if c.name not in _HIDDEN), _summary().label("summary"))
            .where(*conditions)
            .order_by(messages.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = [_listed(dict(r)) for r in conn.execute(query).mappings()]
    return MessagePage(int(total), rows)


def messages_for_person(engine: sa.Engine, person_id: int, *, limit: int = 200) -> MessagePage:
    """The person's messages, newest first, with the total (a timeline shows `limit` and links to the rest)."""
    return list_messages(engine, MessageFilter(person_id=person_id), limit=limit)


def message_detail(engine: sa.Engine, message_id: int, *, include_content: bool = False) -> dict[str, Any]:
    """The ledger row, every attempt (oldest first) and every receipt; the rendered content on request."""
    with read_connection(engine) as conn:
        row = ledger.get_message(conn, message_id)
        if row is None:
            raise NotFoundError(f"No message with id {message_id}.", id=message_id)
        attempts = ledger.attempts_of(conn, message_id)
        if include_content and needs_render(row):
            # Planned with variables: render on read, exactly as the worker renders at claim (deterministic).
            rendered = render_row(conn, row, TemplateCache())
            row["content"] = {} if isinstance(rendered, Held) else rendered
        ids = [a["id"] for a in attempts]
        events: list[dict[str, Any]] = []
        if ids:
            query = sa.select(provider_events).where(provider_events.c.attempt_id.in_(ids))
            events = [dict(r) for r in conn.execute(query.order_by(provider_events.c.id)).mappings()]
    hidden = set(_HIDDEN) - ({"content"} if include_content else set())
    detail = {k: v for k, v in row.items() if k not in hidden}
    detail["attempts"] = [{k: v for k, v in a.items() if k not in {"status_rank", "lease_token"}} for a in attempts]
    detail["receipts"] = [{k: v for k, v in e.items() if k != "dedup_key"} for e in events]
    return detail


@dataclass(frozen=True, slots=True)
class HistoryItem:
    at: dt.datetime
    kind: str  # accepted | attempt | skipped | receipt | sent | delivered
    text: str


def message_history(detail: Mapping[str, Any]) -> list[HistoryItem]:
    """What happened to a message, oldest first, from what the ledger keeps (there is no separate event log)."""
    created: dt.datetime = detail["created_at"]
    items = [HistoryItem(created, "accepted", f"Accepted as {detail['message_class']} for {_plan(detail)}")]
    for skip in detail.get("skips") or ():
        at = parse_at(skip.get("at")) or created
        items.append(HistoryItem(at, "skipped", f"{skip['channel']} skipped: {describe_reason(skip['reason'])}"))
    for attempt in detail.get("attempts", ()):
        label = f"Attempt {attempt['number']} on {attempt['channel']} via {attempt['provider']}"
        items.append(HistoryItem(attempt["started_at"], "attempt", f"{label} started"))
        if attempt.get("finished_at"):
            error = f": {attempt['error']}" if attempt.get("error") else ""
            items.append(HistoryItem(attempt["finished_at"], "attempt", f"{label} {attempt['status']}{error}"))
    for receipt in detail.get("receipts", ()):
        code = f" (error {receipt['error_code']})" if receipt.get("error_code") else ""
        items.append(
            HistoryItem(receipt["received_at"], "receipt", f"{receipt['provider']} reported {receipt['kind']}{code}")
        )
    if detail.get("sent_at"):
        unconfirmed = detail.get("status") == ledger.Status.SENT_UNCONFIRMED
        items.append(
            HistoryItem(detail["sent_at"], "sent", "Sent, unconfirmed (no reply recorded)" if unconfirmed else "Sent")
        )
    if detail.get("delivered_at"):
        items.append(HistoryItem(detail["delivered_at"], "delivered", "Delivered"))
    return sorted(items, key=lambda item: item.at)


# --- building blocks ----------------------------------------------------------------------------------


def _conditions(conn: sa.Connection, filters: MessageFilter) -> list[sa.ColumnElement[bool]]:
    c = messages.c
    out: list[sa.ColumnElement[bool]] = []
    if filters.status is not None:
        out.append(c.status == filters.status)
    if filters.message_class is not None:
        out.append(c.message_class == filters.message_class)
    if filters.person_id is not None:
        out.append(c.person_id == filters.person_id)
    if filters.channel is not None:
        out.append(_plan_has(conn, filters.channel))
    if filters.reason is not None:
        out.append(sa.or_(_matches_kind(c.hold_reason, filters.reason), _skipped_for(conn, filters.reason)))
    return out


def _matches_kind(column: sa.ColumnElement[Any], kind: str) -> sa.ColumnElement[bool]:
    """`quiet_hours` matches `quiet_hours` and `quiet_hours:no_common_window` (LIKE's `_` escaped)."""
    escaped = kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.or_(column == kind, column.like(f"{escaped}:%", escape="\\"))


def _plan_has(conn: sa.Connection, channel: str) -> sa.ColumnElement[bool]:
    """The channel is anywhere in the message's plan (JSON array) — JSONB containment or SQLite json_each."""
    if conn.dialect.name == "postgresql":
        return sa.type_coerce(messages.c.channels, JSONB).contains([channel])
    each = sa.func.json_each(messages.c.channels).table_valued("value")
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == channel))


def _skipped_for(conn: sa.Connection, kind: str) -> sa.ColumnElement[bool]:
    """A channel of the message was skipped for this reason kind (an element of the `skips` JSON array)."""
    if conn.dialect.name == "postgresql":
        element = sa.func.jsonb_array_elements(sa.type_coerce(messages.c.skips, JSONB)).table_valued("value")
        reason: sa.ColumnElement[Any] = element.c.value.op("->>")("reason")
    else:
        element = sa.func.json_each(messages.c.skips).table_valued("value")
        reason = sa.func.json_extract(element.c.value, "$.reason")
    return sa.exists(sa.select(sa.literal(1)).select_from(element).where(_matches_kind(reason, kind)))


def _summary() -> sa.ColumnElement[Any]:
    """A line saying what the message is (e-mail subject, else the text body), read inside the JSON by the DB
    so a page of 50 rows never loads 50 rendered HTML bodies."""
    content = messages.c.content
    parts = [content[(channel, field)].as_string() for channel, field in SUMMARY_FIELDS]
    return sa.func.substr(sa.func.coalesce(*parts), 1, SUMMARY_LENGTH)


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    channels: Sequence[str] = row["channels"] or ()
    index = row["plan_index"]
    channel = channels[index] if 0 <= index < len(channels) else None
    addresses: Mapping[str, str] = row["addresses"] or {}
    row["channel"] = channel
    row["address"] = addresses.get(channel or "") or next(iter(addresses.values()), None)
    return row


def _plan(detail: Mapping[str, Any]) -> str:
    return " → ".join(detail.get("channels") or ()) or "no channel"


def parse_at(value: Any) -> dt.datetime | None:
    """A skip's `at` (ISO text inside the JSON) as an aware datetime, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
