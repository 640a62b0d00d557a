"""Sign-in checks (password, TOTP, recovery code), 2FA enrolment and recovery-code regeneration.

Every check is throttled per account and per IP, and every failure is audited. A correct password
does not clear the account's failure count; only a completed sign-in does, so knowing the password
does not buy unlimited guesses at the second factor.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa

from herald.auth import passwords, recovery, throttle, totp
from herald.auth.audit import Actor, record_audit
from herald.auth.users import User, get_user
from herald.core.clock import Clock
from herald.core.errors import InvalidInputError, UnauthorizedError
from herald.db.auth_tables import users

NextStep = Literal["second_factor", "enrol", "full"]
Factor = Literal["password", "totp", "recovery_code"]


class SignInError(UnauthorizedError):
    """A wrong password or code; the message never says whether the account exists."""


def _keys(email: str, ip: str | None) -> list[str]:
    return [throttle.account_key(email), throttle.ip_key(ip)]


def _fail(db: sa.Engine, clock: Clock, email: str, ip: str | None, factor: Factor, user_id: int | None) -> None:
    record_audit(
        db,
        clock,
        "login.failed",
        actor=Actor(email[:320], id=user_id, ip=ip),
        target=email[:320],
        target_id=user_id,
        details={"factor": factor},
    )
    throttle.record_failure(db, clock, _keys(email, ip), ip=ip)


def check_password(db: sa.Engine, clock: Clock, email: str, password: str, ip: str | None) -> User:
    """The first factor. Unknown e-mails cost the same time and get the same answer as wrong passwords."""
    email = email.strip().lower()
    throttle.check_allowed(db, clock, _keys(email, ip))
    with db.connect() as conn:
        row = conn.execute(sa.select(users.c.id, users.c.password_hash).where(users.c.email == email)).first()
    stored_hash = row.password_hash if row else None
    if not passwords.verify_password(stored_hash, password) or row is None:
        _fail(db, clock, email, ip, "password", row.id if row else None)
        raise SignInError("The e-mail or password is wrong.", field="password")
    if passwords.needs_rehash(stored_hash or ""):
        rehashed = passwords.hash_password(password)
        with db.begin() as conn:
            conn.execute(users.update().where(users.c.id == row.id).values(password_hash=rehashed))
    return get_user(db, int(row.id))


def next_step(user: User) -> NextStep:
    if user.totp_enrolled:
        return "second_factor"
    return "enrol" if user.totp_required else "full"


def _totp_secret(db: sa.Engine | sa.Connection, user_id: int) -> tuple[str | None, int | None]:
    statement = sa.select(users.c.totp_secret, users.c.totp_last_step).where(users.c.id == user_id)
    if isinstance(db, sa.Engine):
        with db.connect() as conn:
            row = conn.execute(statement).one()
    else:
        row = db.execute(statement).one()
    return row.totp_secret, row.totp_last_step


def _consume_step(conn: sa.Connection, user_id: int, step: int) -> bool:
    """Record the accepted step; the WHERE makes two concurrent submissions of one code yield one success."""
    updated = conn.execute(
        users.update()
        .where(
            users.c.id == user_id,
            sa.or_(users.c.totp_last_step.is_(None), users.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    ).rowcount
    return updated == 1


def check_totp(db: sa.Engine, clock: Clock, user: User, code: str, ip: str | None) -> None:
    """Accept a current code once; raise SignInError for a wrong, stale or replayed one."""
    throttle.check_allowed(db, clock, _keys(user.email, ip))
    secret, last_step = _totp_secret(db, user.id)
    step = totp.matching_step(secret, code, clock.now(), last_step=last_step) if secret else None
    if step is not None:
        with db.begin() as conn:
            if _consume_step(conn, user.id, step):
                return
    _fail(db, clock, user.email, ip, "totp", user.id)
    raise SignInError("That code is not valid. Codes work once; wait for the next one.", field="code")


def check_recovery_code(db: sa.Engine, clock: Clock, user: User, code: str, ip: str | None) -> int:
    """Spend one recovery code; returns how many remain."""
    throttle.check_allowed(db, clock, _keys(user.email, ip))
    with db.begin() as conn:
        used = recovery.use_code(conn, clock, user.id, code)
        if used:
            left = recovery.remaining(conn, user.id)
            record_audit(
                conn,
                clock,
                "recovery.used",
                actor=user.actor(ip),
                target=user.email,
                target_id=user.id,
                details={"remaining": left},
            )
            return left
    _fail(db, clock, user.email, ip, "recovery_code", user.id)
    raise SignInError("That recovery code is not valid or was already used.", field="recovery_code")


def record_sign_in(db: sa.Engine, clock: Clock, user: User, factor: Factor, ip: str | None) -> None:
    with db.begin() as conn:
        throttle.record_success(conn, throttle.account_key(user.email))
        record_audit(
            conn,
            clock,
            "login.succeeded",
            actor=user.actor(ip),
            target=user.email,
            target_id=user.id,
            details={"factor": factor},
        )


def confirm_enrolment(db: sa.Engine, clock: Clock, user: User, secret: str, code: str, ip: str | None) -> list[str]:
    """Activate a TOTP secret once the operator proves their app has it; returns new recovery codes."""
    throttle.check_allowed(db, clock, _keys(user.email, ip))
    step = totp.matching_step(secret, code, clock.now(), last_step=None)
    if step is None:
        _fail(db, clock, user.email, ip, "totp", user.id)
        raise SignInError("That code does not match; check the app's clock and try the newest code.", field="code")
    with db.begin() as conn:
        conn.execute(
            users.update()
            .where(users.c.id == user.id)
            .values(totp_secret=secret, totp_enrolled_at=clock.now(), totp_last_step=step)
        )
        codes = recovery.replace_codes(conn, clock, user.id)
        record_audit(conn, clock, "2fa.enrolled", actor=user.actor(ip), target=user.email, target_id=user.id)
    return codes


def regenerate_recovery_codes(
    db: sa.Engine, clock: Clock, user: User, *, code: str, password: str, ip: str | None
) -> list[str]:
    """Step-up first (a fresh TOTP code if enrolled, else the password), then replace all codes."""
    if user.totp_enrolled:
        try:
            check_totp(db, clock, user, code, ip)
        except SignInError as exc:
            raise InvalidInputError(exc.message, field="code") from exc
    else:
        check_password_of(db, clock, user, password, ip)
    with db.begin() as conn:
        codes = recovery.replace_codes(conn, clock, user.id)
        record_audit(conn, clock, "recovery.regenerated", actor=user.actor(ip), target=user.email, target_id=user.id)
    return codes


def check_password_of(db: sa.Engine, clock: Clock, user: User, password: str, ip: str | None) -> None:
    try:
        check_password(db, clock, user.email, password, ip)
    except SignInError as exc:
        raise InvalidInputError("Your password is not right.", field="password") from exc


def remaining_recovery_codes(db: sa.Engine, user_id: int) -> int:
    with db.connect() as conn:
        return recovery.remaining(conn, user_id)
