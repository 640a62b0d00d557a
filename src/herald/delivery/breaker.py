"""Provider circuit breakers kept in the database, so every worker on every machine sees the same state."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.db.delivery_tables import provider_health
from herald.db.engine import dialect_insert

log = logging.getLogger(__name__)
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    threshold: int = 5  # consecutive failures that open the breaker
    cooldown: dt.timedelta = dt.timedelta(seconds=30)  # open time before one probe may go
    probe_lease: dt.timedelta = dt.timedelta(seconds=60)  # a probe that never reports back is given up


def _ensure(conn: sa.Connection, providers: Iterable[str], now: dt.datetime) -> None:
    rows = [{"provider": p, "state": CLOSED, "failures": 0, "changed_at": now, "updated_at": now} for p in providers]
    if not rows:
        return
    conn.execute(dialect_insert(conn, provider_health).values(rows).on_conflict_do_nothing(index_elements=["provider"]))


_STATES = sa.select(provider_health).where(provider_health.c.provider.in_(sa.bindparam("names", expanding=True)))


def states(conn: sa.Connection, providers: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each provider's breaker row (closed with no failures when it has none yet): one statement, compiled once."""
    names = list(providers)
    if not names:
        return {}
    found = {r["provider"]: dict(r) for r in conn.execute(_STATES, {"names": names}).mappings()}
    return {name: found.get(name) or {"provider": name, "state": CLOSED, "failures": 0} for name in names}


class Snapshot:
    """The breaker rows as this worker last read them, shared by its claim and its completions.

    Read once per claimed batch (`decide.prepare`) and re-read by a completion group when older than
    `max_age` seconds, so a success while the breaker is closed with no failures costs no statement at all,
    and another worker's transition is seen within `max_age`. `record_success`/`record_failure` update it."""

    def __init__(self, max_age: float = 1.0) -> None:
        self.max_age = max_age
        self._states: dict[str, dict[str, Any]] = {}
        self._read_at = float("-inf")

    def store(self, found: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        self._states, self._read_at = found, time.monotonic()
        return found

    def current(self, conn: sa.Connection, providers: Iterable[str]) -> dict[str, dict[str, Any]]:
        names = sorted(providers)
        if time.monotonic() - self._read_at > self.max_age or any(n not in self._states for n in names):
            return self.store(states(conn, set(names) | set(self._states)))
        return self._states


def admit(
    conn: sa.Connection, provider: str, state: dict[str, Any], now: dt.datetime, policy: BreakerPolicy
) -> dt.datetime | None:
    """None if a send may go to `provider` now; else when to look again.

    An open breaker whose cooldown has passed lets exactly one probe through: the worker whose
    compare-and-set moves it to half_open sends it, everyone else keeps treating it as open.
    """
    if state["state"] == CLOSED:
        return None
    until: dt.datetime | None = state.get("open_until")
    if until is not None and now < until:
        return until
    probe_until = now + policy.probe_lease
    result = conn.execute(
        sa.update(provider_health)
        .where(
            provider_health.c.provider == provider,
            provider_health.c.state == state["state"],
            sa.or_(provider_health.c.open_until.is_(None), provider_health.c.open_until <= now),
        )
        .values(state=HALF_OPEN, open_until=probe_until, changed_at=now, updated_at=now)
    )
    if result.rowcount == 1:
        log.warning("breaker for %s half-open: sending one probe", provider)
        state.update(state=HALF_OPEN, open_until=probe_until)
        return None
    return probe_until


def quiet(state: Mapping[str, Any]) -> bool:
    """Closed with no failure counted: a success changes nothing, so it writes nothing."""
    return bool(state["state"] == CLOSED and not state["failures"])


def record_success(
    conn: sa.Connection, provider: str, now: dt.datetime, state: Mapping[str, Any] | None = None
) -> None:
    """A send the provider accepted: close the breaker and reset the failure count, on a transition only.

    `state` is the provider's row as this transaction read it (`states`, once per group of completions):
    while it is closed with no failures — almost always — nothing is written, so thousands of successes
    per second do not each rewrite one hot row. Any other state is moved with the same compare-and-set
    statements as before, so what other workers see is unchanged."""
    if state is not None and quiet(state) and state.get("changed_at") is not None:
        return  # (no changed_at: the provider has no row yet; it gets one, so `herald providers` lists it)
    _ensure(conn, [provider], now)
    result = conn.execute(
        sa.update(provider_health)
        .where(provider_health.c.provider == provider, provider_health.c.state != CLOSED)
        .values(state=CLOSED, failures=0, open_until=None, changed_at=now, updated_at=now)
    )
    if result.rowcount:
        log.warning("breaker for %s closed: the provider answered again", provider)
    conn.execute(
        sa.update(provider_health)
        .where(provider_health.c.provider == provider, provider_health.c.failures != 0)
        .values(failures=0, updated_at=now)
    )
    if isinstance(state, dict):
        state.update(state=CLOSED, failures=0, open_until=None, changed_at=state.get("changed_at") or now)


def record_failure(
    conn: sa.Connection,
    provider: str,
    error: str,
    now: dt.datetime,
    policy: BreakerPolicy,
    state: dict[str, Any] | None = None,
) -> None:
    """Count one more consecutive failure; open at the threshold, or at once when a probe failed.

    `state` (as `record_success` reads it) is marked as no longer quiet, so a success later in the same
    group resets the count in the database."""
    if state is not None:
        state["failures"] = int(state.get("failures") or 0) + 1
    _ensure(conn, [provider], now)
    conn.execute(
        sa.update(provider_health)
        .where(provider_health.c.provider == provider)
        .values(failures=provider_health.c.failures + 1, last_error=error[:2000], updated_at=now)
    )
    opening = sa.or_(
        provider_health.c.state == HALF_OPEN,
        sa.and_(provider_health.c.state == CLOSED, provider_health.c.failures >= policy.threshold),
    )
    result = conn.execute(
        sa.update(provider_health)
        .where(provider_health.c.provider == provider, opening)
        .values(state=OPEN, opened_at=now, open_until=now + policy.cooldown, changed_at=now)
    )
    if result.rowcount:
        log.warning("breaker for %s opened until %s: %s", provider, (now + policy.cooldown).isoformat(), error)


def list_health(conn: sa.Connection) -> list[dict[str, Any]]:
    query = sa.select(provider_health).order_by(provider_health.c.provider)
    return [dict(r) for r in conn.execute(query).mappings()]
