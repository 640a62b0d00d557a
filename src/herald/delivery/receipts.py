"""Provider status callbacks through the port: find the adapter, let it verify and parse, apply each event once."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

import httpx
import sqlalchemy as sa

from herald.channels.base import EventKind, ProviderEvent, ProviderOutcome
from herald.channels.registry import ChannelRegistry
from herald.channels.twilio import build_providers
from herald.channels.twilio_callbacks import REFERENCE_PARAM
from herald.db.delivery_tables import messages, provider_events
from herald.db.engine import dialect_insert
from herald.db.runtime import Runtime
from herald.delivery import ledger, outcomes
from herald.delivery.bootstrap import email_provider, public_url, twilio_settings
from herald.delivery.settings import DeliverySettings, delivery_settings

_DONE = {EventKind.DELIVERED, EventKind.READ, EventKind.ANSWERED}
_DEAD = {EventKind.UNDELIVERED, EventKind.FAILED}


def signed_url(public_callback_url: str, query: str) -> str:
    """The URL the provider signed: our public callback URL with the parameters it was called with."""
    return str(httpx.URL(public_callback_url).copy_merge_params(dict(parse_qsl(query, keep_blank_values=True))))


class _CallbackAdapters:
    """The process's callback registry, built once on first use and kept on the runtime (composition root)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registry: ChannelRegistry | None = None


def callback_registry(runtime: Runtime, delivery: DeliverySettings) -> ChannelRegistry:
    """The adapters a callback may be addressed to. Parsing a callback needs their settings only: nothing
    is connected and no simulator is started (the worker's registry does that).

    With the process's own delivery settings the registry is built once per runtime; settings passed
    explicitly (tests, tools) get a registry of their own."""
    if delivery is not delivery_settings(runtime):
        return _build_callback_registry(runtime, delivery)
    held = runtime.part(_CallbackAdapters, _CallbackAdapters)
    with held.lock:
        if held.registry is None:
            held.registry = _build_callback_registry(runtime, delivery)
        return held.registry


def _build_callback_registry(runtime: Runtime, delivery: DeliverySettings) -> ChannelRegistry:
    twilio = build_providers(twilio_settings(runtime, delivery), client=_idle_client(), clock=runtime.clock)
    return ChannelRegistry([email_provider(runtime.settings, delivery, runtime.clock, 1), *twilio])


def _idle_client() -> httpx.AsyncClient:
    # The Twilio adapters want an HTTP client; callback parsing never uses it, so nothing is opened.
    return httpx.AsyncClient()


def record_callback(
    runtime: Runtime,
    provider: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    delivery: DeliverySettings | None = None,
) -> int:
    """`POST /hooks/{provider}`: the adapter verifies (SignatureError) and parses; returns events applied.

    UnknownProviderError when no adapter has that name."""
    settings = delivery or delivery_settings(runtime)
    return _parse_and_apply(
        runtime, settings, provider, public_url(runtime.settings, settings) + path, query, headers, body
    )


def _parse_and_apply(
    runtime: Runtime,
    settings: DeliverySettings,
    provider: str,
    public: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> int:
    adapter = callback_registry(runtime, settings).get(provider)
    events = adapter.parse_callback(signed_url(public, query), headers, body)
    with runtime.engine.begin() as conn:
        return apply_events(conn, events, runtime.clock.now(), soft_bounce_limit=settings.soft_bounce_limit)


def record_twilio_callback(
    runtime: Runtime, query: str, headers: Mapping[str, str], body: bytes, delivery: DeliverySettings | None = None
) -> int:
    """The shared Twilio status URL (`/hooks/twilio/status`): the adapter is the one that made the attempt
    the callback names, so SMS, WhatsApp and voice share one URL; then as `record_callback`."""
    reference = dict(parse_qsl(query)).get(REFERENCE_PARAM)
    with runtime.engine.connect() as conn:
        attempt = ledger.attempt_by_reference(conn, reference) if reference else None
    provider = attempt["provider"] if attempt and str(attempt["provider"]).startswith("twilio") else "twilio_sms"
    settings = delivery or delivery_settings(runtime)
    # Signed over the status URL the account was given (HERALD_TWILIO_STATUS_CALLBACK_URL may differ).
    public = twilio_settings(runtime, settings).status_callback_url
    return _parse_and_apply(runtime, settings, provider, public, query, headers, body)


def apply_events(
    conn: sa.Connection, events: Sequence[ProviderEvent], now: dt.datetime, *, soft_bounce_limit: int = 3
) -> int:
    """Each event once (a unique key, not a check); a replayed callback changes nothing."""
    applied = 0
    for event in events:
        attempt = ledger.attempt_by_reference(conn, event.reference) if event.reference else None
        if not _record(conn, event, attempt, now):
            continue
        applied += 1
        if attempt is not None:
            _apply(conn, event, attempt, now)
            if event.outcome is not None:
                _report(conn, event, event.outcome, attempt, now, soft_bounce_limit)
    return applied


def _report(
    conn: sa.Connection,
    event: ProviderEvent,
    outcome: ProviderOutcome,
    attempt: Mapping[str, Any],
    now: dt.datetime,
    soft_bounce_limit: int,
) -> None:
    row = ledger.get_message(conn, attempt["message_id"])
    if row is None:
        return
    outcomes.record_outcome(
        conn,
        outcome,
        person_id=int(row["person_id"]),
        channel=attempt["channel"],
        address=row["addresses"].get(attempt["channel"]),
        message_id=int(row["id"]),
        provider=event.provider,
        reference=attempt["reference"],
        soft_bounce_limit=soft_bounce_limit,
        now=now,
    )


def _record(conn: sa.Connection, event: ProviderEvent, attempt: Mapping[str, Any] | None, now: dt.datetime) -> bool:
    key = f"{event.provider}:{event.provider_message_id or event.reference}:{event.kind.value}"
    statement = (
        dialect_insert(conn, provider_events)
        .values(
            dedup_key=key[:300],
            provider=event.provider,
            kind=event.kind.value,
            provider_message_id=event.provider_message_id,
            reference=event.reference,
            attempt_id=attempt["id"] if attempt else None,
            error_code=event.error_code,
            occurred_at=event.occurred_at,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(provider_events.c.id)
    )
    return conn.execute(statement).scalar() is not None


def _apply(conn: sa.Connection, event: ProviderEvent, attempt: Mapping[str, Any], now: dt.datetime) -> None:
    pid = {"provider_message_id": event.provider_message_id} if event.provider_message_id else {}
    kind: ledger.ReceiptKind
    if event.kind in _DONE:
        ledger.advance_attempt(conn, attempt["id"], "delivered", pid, now=now)
        kind, extra = "delivered", {"delivered_at": now}
    elif event.kind == EventKind.SENT:
        ledger.advance_attempt(conn, attempt["id"], "sent", pid, now=now)
        kind, extra = "sent", {}
    elif event.kind in _DEAD:
        values = {**pid, "error_code": event.error_code, "note": f"receipt:{event.kind.value}"}
        if not ledger.advance_attempt(conn, attempt["id"], "failed", values, now=now):
            return
        kind, extra = "failed", {}
    else:
        return
    found = ledger.get_message(conn, attempt["message_id"])
    if found is None:
        return
    row = ledger.LedgerRow.of(found)
    reason = f"receipt:{event.kind.value}:{event.error_code or ''}".rstrip(":")
    change = ledger.receipt(row, attempt["id"], kind, reason=reason, now=now)
    if change is not None:
        _compare_and_set(conn, row, change, extra, now)


def _compare_and_set(
    conn: sa.Connection, row: ledger.LedgerRow, change: ledger.Change, extra: Mapping[str, Any], now: dt.datetime
) -> bool:
    """Write the change only if the row is still as the transition saw it (status and current attempt), so a
    concurrent worker or receipt in between makes this one a no-op rather than a lost update."""
    values = {**change.row_values(), "status_rank": ledger.rank(change.status), **extra}
    result = conn.execute(
        sa.update(messages)
        .where(
            messages.c.id == row.id,
            messages.c.status == row.status.value,
            messages.c.lease_token == row.lease_token,
            _same_attempt(row.current_attempt_id),
        )
        .values({**values, "lease_until": None, "updated_at": now})
    )
    return result.rowcount == 1


def _same_attempt(attempt_id: int | None) -> sa.ColumnElement[bool]:
    column = messages.c.current_attempt_id
    return column.is_(None) if attempt_id is None else column == attempt_id
