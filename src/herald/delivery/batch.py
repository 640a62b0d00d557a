"""Batch intake: up to 1,000 sends in one call, each with its own idempotency key and its own result.

Items are independent: every item is checked without the database first, then the valid ones are written in
one transaction per chunk (recipients resolved in bulk, planned one by one with the pure planner, inserted
with enqueue_many and one multi-row insert of their keys). An item's ledger row and its idempotency record
commit together, so a crash never leaves half an item; a replayed item answers what was stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from herald.core.errors import ConflictError, HeraldError, InvalidInputError
from herald.db.runtime import Runtime
from herald.delivery import ledger
from herald.delivery.bulk_plan import enqueue_many, load_recipients, plan_rules, recent_sends
from herald.delivery.planner import Rules
from herald.delivery.service import (
    ACCEPTED,
    IdempotencyConflictError,
    SendRequest,
    StoredKey,
    accepted_body,
    check_key,
    new_message,
    plan_send,
    replay_of,
    request_hash,
    resolve_recipients,
    store_keys,
    stored_keys,
    tombstone_secret,
    validate_request,
)
from herald.delivery.settings import DeliverySettings, delivery_settings
from herald.schedule.caps import SendRecord
from herald.templates.render import TemplateSpec
from herald.templates.store import load_template

MAX_ITEMS = 1000
# Items written per transaction. A whole batch fits: one commit per call is what lets intake scale on
# SQLite (one writer) and PostgreSQL (one fsync) alike.
WRITE_CHUNK = 1000
MULTI_STATUS = 207
# A chunk that lost a race for a key or a new address to a concurrent request is rolled back and written
# again (those items are replays the second time); this many collisions in a row means something is wrong.
RACE_RETRIES = 5


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One item as the entry point parsed it: the request, or the error that stopped it parsing."""

    idempotency_key: str | None
    payload: Mapping[str, Any]  # hashed to tell a replay from a different request under the same key
    request: SendRequest | None
    error: HeraldError | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    idempotency_key: str | None
    status: int
    body: Mapping[str, Any] | None = None  # the accepted message, as POST /api/messages answers it
    error: HeraldError | None = None
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "idempotency_key": self.idempotency_key, "status": self.status}
        if self.body is not None:
            out |= {"id": self.body["id"], "message": dict(self.body), "duplicate": bool(self.body["duplicate"])}
            out["replayed"] = self.replayed
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class BatchResult:
    results: list[ItemResult]

    @property
    def status_code(self) -> int:
        """202 when every item was accepted (or replayed), else 207: look at each item's status."""
        return ACCEPTED if all(r.status == ACCEPTED for r in self.results) else MULTI_STATUS

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results]}


@dataclass(frozen=True, slots=True)
class _Valid:
    index: int
    key: str
    digest: str
    request: SendRequest
    message_key: str


class _LostRace(Exception):
    """A concurrent request stored one of this chunk's keys first."""


def _failed(index: int, key: str | None, error: HeraldError) -> ItemResult:
    return ItemResult(index, key, error.http_status, error=error)


def submit_batch(
    runtime: Runtime, principal: str, items: Sequence[BatchItem], delivery: DeliverySettings | None = None
) -> BatchResult:
    """Plan and enqueue each item on its own terms; answers once every accepted item is committed."""
    if not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidInputError(f"Send 1 to {MAX_ITEMS} messages per batch.", field="messages", count=len(items))
    results: dict[int, ItemResult] = {}
    valid: list[_Valid] = []
    first_of_key: dict[str, tuple[int, str]] = {}  # key → (index, digest) of its first item
    repeats: list[tuple[int, str, str]] = []
    for index, item in enumerate(items):
        try:
            if item.error is not None:
                raise item.error
            key = check_key(item.idempotency_key)
            digest = request_hash(item.payload)
            if key in first_of_key:
                repeats.append((index, key, digest))
                continue
            first_of_key[key] = (index, digest)
            assert item.request is not None
            validate_request(item.request)
        except HeraldError as exc:
            results[index] = _failed(index, item.idempotency_key, exc)
            continue
        message_key = item.request.message_key or f"idem:{principal}:{key}"
        valid.append(_Valid(index, key, digest, item.request, message_key))

    delivery = delivery or delivery_settings(runtime)
    rules = plan_rules(runtime, delivery)
    secret = tombstone_secret(runtime)
    for start in range(0, len(valid), WRITE_CHUNK):
        results.update(_write_chunk(runtime, principal, valid[start : start + WRITE_CHUNK], rules, secret))

    for index, key, digest in repeats:
        first_index, first_digest = first_of_key[key]
        first = results[first_index]
        if digest != first_digest:
            conflict = IdempotencyConflictError(
                "This Idempotency-Key was already used with a different request.", idempotency_key=key
            )
            results[index] = _failed(index, key, conflict)
        else:  # the same item twice: the second answers what the first did
            results[index] = replace(first, index=index, replayed=first.status == ACCEPTED)
    return BatchResult([results[i] for i in range(len(items))])


def _write_chunk(
    runtime: Runtime, principal: str, chunk: Sequence[_Valid], rules: Rules, secret: str
) -> dict[int, ItemResult]:
    for attempt in range(RACE_RETRIES):
        try:
            with runtime.engine.begin() as conn:
                return _write(conn, runtime, principal, chunk, rules, secret)
        except (_LostRace, sa.exc.IntegrityError):
            # A concurrent request stored one of our keys, or created a person for one of our new addresses,
            # first: nothing of this chunk was kept; written again, those items find what it committed.
            if attempt == RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _write(
    conn: sa.Connection, runtime: Runtime, principal: str, chunk: Sequence[_Valid], rules: Rules, secret: str
) -> dict[int, ItemResult]:
    results: dict[int, ItemResult] = {}
    stored = stored_keys(conn, principal, [v.key for v in chunk])
    todo: list[_Valid] = []
    for v in chunk:
        if v.key not in stored:
            todo.append(v)
            continue
        try:
            replay = replay_of(stored[v.key], v.key, v.digest)
        except HeraldError as exc:
            results[v.index] = _failed(v.index, v.key, exc)
        else:
            results[v.index] = ItemResult(v.index, v.key, replay.status_code, body=replay.body, replayed=True)
    if not todo:
        return results

    now = runtime.clock.now()
    found = resolve_recipients(
        conn, [v.request for v in todo], default_region=runtime.settings.default_region, secret=secret, now=now
    )
    people = [(v, pid) for v, pid in zip(todo, found, strict=True) if isinstance(pid, int)]
    for v, problem in zip(todo, found, strict=True):
        if isinstance(problem, HeraldError):
            results[v.index] = _failed(v.index, v.key, problem)
    person_ids = [pid for _, pid in people]
    recipients = load_recipients(conn, person_ids)
    recent = recent_sends(conn, person_ids, now) if rules.caps else {}
    templates: dict[tuple[str, int | None], TemplateSpec | HeraldError] = {}
    planned: list[tuple[_Valid, ledger.NewMessage]] = []
    seen: set[tuple[int, str]] = set()
    for v, pid in people:
        try:
            template = _template(conn, templates, v.request)
            recipient = recipients.get(pid)
            if recipient is None:  # merged or erased by someone else since it was resolved
                raise ConflictError(f"Person {pid} is no longer active.", id=pid)
            plan = plan_send(v.request, recipient, template, rules, recent.get(pid, ()), now)
        except HeraldError as exc:
            results[v.index] = _failed(v.index, v.key, exc)
            continue
        version = template.version if template is not None else None
        row = new_message(pid, v.message_key, v.request, plan, version, now)
        if (pid, v.message_key) not in seen and (row.status != "held" or row.releasable):
            # A later item for the same person is capped as if this one were already stored (as it is for
            # two separate requests); the same message key twice is one row and counts once.
            recent.setdefault(pid, []).append(SendRecord(row.channels[0], row.message_class, row.available_at))
        seen.add((pid, v.message_key))
        planned.append((v, row))

    enqueued = enqueue_many(conn, [row for _, row in planned], now)
    keys = []
    for (v, row), entry in zip(planned, enqueued, strict=True):
        body = accepted_body(conn, entry, row)
        results[v.index] = ItemResult(v.index, v.key, ACCEPTED, body=body)
        keys.append(StoredKey(v.key, v.digest, body, entry.id))
    if len(store_keys(conn, principal, keys, now)) != len(keys):
        raise _LostRace
    return results


def _template(
    conn: sa.Connection, cache: dict[tuple[str, int | None], TemplateSpec | HeraldError], request: SendRequest
) -> TemplateSpec | None:
    if request.template_id is None:
        return None
    wanted = (request.template_id, request.template_version)
    if wanted not in cache:
        try:
            cache[wanted] = load_template(conn, request.template_id, request.template_version)
        except HeraldError as exc:
            cache[wanted] = exc
    found = cache[wanted]
    if isinstance(found, HeraldError):
        raise found
    return found
