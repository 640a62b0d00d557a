"""Per-account and per-IP throttling of password, TOTP and recovery-code attempts, with exponential backoff.

After a few free failures each further failure locks the key for twice as long as the last one,
up to a ceiling; that caps guesses far below 100 an hour per account (ASVS 4.0.3 V2.2.1). Keys are
built from what was typed, whether or not the account exists, so throttling reveals nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from herald.auth.audit import SYSTEM, record_audit
from herald.core.clock import Clock
from herald.core.errors import HeraldError
from herald.db.auth_tables import auth_throttle


class ThrottledError(HeraldError):
    code = "throttled"
    http_status = 429


@dataclass(frozen=True)
class ThrottlePolicy:
    account_free_failures: int = 5
    ip_free_failures: int = 20  # many operators may share one office address
    base_delay: dt.timedelta = dt.timedelta(seconds=1)
    max_delay: dt.timedelta = dt.timedelta(minutes=15)
    forget_after: dt.timedelta = dt.timedelta(hours=1)

    def free_failures(self, key: str) -> int:
        return self.account_free_failures if key.startswith("account:") else self.ip_free_failures

    def delay(self, key: str, failures: int) -> dt.timedelta | None:
        over = failures - self.free_failures(key)
        if over < 0:
            return None
        return min(self.base_delay * (1 << min(over, 30)), self.max_delay)


DEFAULT_POLICY = ThrottlePolicy()


def account_key(email: str) -> str:
    return f"account:{email.strip().lower()[:320]}"


def ip_key(ip: str | None) -> str:
    return f"ip:{ip or 'unknown'}"


def check_allowed(db: sa.Engine, clock: Clock, keys: Sequence[str], policy: ThrottlePolicy = DEFAULT_POLICY) -> None:
    """Raise ThrottledError if any key is locked right now."""
    now = clock.now()
    with db.connect() as conn:
        until = conn.scalar(
            sa.select(sa.func.max(auth_throttle.c.locked_until)).where(
                auth_throttle.c.key.in_(list(keys)), auth_throttle.c.locked_until > now
            )
        )
    if until is not None:
        wait = max(1, math.ceil((until - now).total_seconds()))
        raise ThrottledError(f"Too many failed attempts. Try again in {wait} seconds.", retry_after=wait)


def record_failure(
    db: sa.Engine,
    clock: Clock,
    keys: Sequence[str],
    *,
    ip: str | None = None,
    policy: ThrottlePolicy = DEFAULT_POLICY,
) -> None:
    """Count one failed attempt against every key; lock keys past their free failures."""
    for key in keys:
        try:
            _fail_one(db, clock, key, ip, policy)
        except sa.exc.IntegrityError:
            # Another request inserted the same key first; its row now exists, so update it.
            _fail_one(db, clock, key, ip, policy)


def _fail_one(db: sa.Engine, clock: Clock, key: str, ip: str | None, policy: ThrottlePolicy) -> None:
    now = clock.now()
    with db.begin() as conn:
        row = (
            conn.execute(sa.select(auth_throttle).where(auth_throttle.c.key == key).with_for_update())
            .mappings()
            .first()
        )
        fresh = row is None or now - row["last_failure_at"] > policy.forget_after
        failures = 1 if fresh else int(row["failures"]) + 1  # type: ignore[index]
        delay = policy.delay(key, failures)
        values = {
            "failures": failures,
            "last_failure_at": now,
            "locked_until": now + delay if delay is not None else None,
        }
        if row is None:
            conn.execute(auth_throttle.insert().values(key=key, first_failure_at=now, **values))
        else:
            if fresh:
                values["first_failure_at"] = now
            conn.execute(auth_throttle.update().where(auth_throttle.c.key == key).values(**values))
        if delay is not None:
            record_audit(
                conn,
                clock,
                "auth.locked",
                actor=SYSTEM,
                target=key,
                ip=ip,
                details={"failures": failures, "locked_seconds": int(delay.total_seconds())},
            )


def record_success(db: sa.Engine | sa.Connection, key: str) -> None:
    """A correct answer clears the account's count (never the IP's: one account must not unlock others)."""
    statement = auth_throttle.delete().where(auth_throttle.c.key == key)
    if isinstance(db, sa.Engine):
        with db.begin() as conn:
            conn.execute(statement)
    else:
        db.execute(statement)
