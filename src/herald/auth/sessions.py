"""Server-side web sessions: 256-bit ids stored hashed, stages, timeouts, rotation, revocation and CSRF.

A session moves through stages: `anonymous` (a visitor; holds only the CSRF token for the sign-in
forms), `second_factor` or `enrol` (the password was right; the second factor is pending) and
`full`. Every stage change issues a new id (rotation), so an id seen before sign-in is worthless after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from herald.core.clock import Clock
from herald.db.auth_tables import auth_sessions
from herald.db.unit_of_work import UnitOfWork

Stage = Literal["anonymous", "second_factor", "enrol", "full"]
PENDING_LIFETIME = dt.timedelta(minutes=10)  # time allowed between password and second factor
_TOUCH_EVERY = dt.timedelta(seconds=30)  # skip a write per request; idle timing stays within 30 s


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta = dt.timedelta(minutes=30)
    absolute: dt.timedelta = dt.timedelta(hours=12)

    @classmethod
    def from_settings(cls, idle_minutes: int, absolute_hours: int) -> SessionPolicy:
        return cls(idle=dt.timedelta(minutes=idle_minutes), absolute=dt.timedelta(hours=absolute_hours))


@dataclass(frozen=True)
class Session:
    id: int
    user_id: int | None
    stage: Stage
    pending_totp_secret: str | None
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie; only its hash is stored
    session: Session


def _digest(token: str) -> str:
    # 256 random bits: a fast hash is safe (nothing to guess), and a stolen table holds no usable ids.
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def csrf_token(token: str) -> str:
    """The session's synchronizer token, derived from the (secret, HttpOnly) session id."""
    return hmac.new(token.encode("ascii", "replace"), b"herald-csrf", hashlib.sha256).hexdigest()


def check_csrf(token: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token(token), submitted or "")


def _session(row: sa.RowMapping) -> Session:
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        stage=row["stage"],
        pending_totp_secret=row["pending_totp_secret"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        ip=row["ip"],
        user_agent=row["user_agent"],
    )


def start_session(
    conn: sa.Connection,
    clock: Clock,
    policy: SessionPolicy,
    *,
    stage: Stage,
    user_id: int | None = None,
    pending_totp_secret: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> NewSession:
    now = clock.now()
    lifetime = policy.absolute if stage in ("anonymous", "full") else min(PENDING_LIFETIME, policy.absolute)
    token = secrets.token_urlsafe(32)
    row = (
        conn.execute(
            auth_sessions.insert()
            .values(
                token_hash=_digest(token),
                user_id=user_id,
                stage=stage,
                pending_totp_secret=pending_totp_secret,
                created_at=now,
                last_seen_at=now,
                expires_at=now + lifetime,
                ip=(ip or "")[:64] or None,
                user_agent=(user_agent or "")[:300] or None,
            )
            .returning(*auth_sessions.c)
        )
        .mappings()
        .one()
    )
    return NewSession(token=token, session=_session(row))


def rotate_session(
    conn: sa.Connection,
    clock: Clock,
    policy: SessionPolicy,
    old_token: str | None,
    *,
    stage: Stage,
    user_id: int | None,
    pending_totp_secret: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> NewSession:
    """End the old session (if any) and start a new one with a fresh id."""
    if old_token:
        conn.execute(auth_sessions.delete().where(auth_sessions.c.token_hash == _digest(old_token)))
    return start_session(
        conn,
        clock,
        policy,
        stage=stage,
        user_id=user_id,
        pending_totp_secret=pending_totp_secret,
        ip=ip,
        user_agent=user_agent,
    )


def load_session(db: sa.Engine, clock: Clock, policy: SessionPolicy, token: str | None) -> Session | None:
    """The live session for a cookie value, or None if unknown, idle too long or past its lifetime."""
    if not token:
        return None
    now = clock.now()
    with db.connect() as conn:
        row = (
            conn.execute(sa.select(auth_sessions).where(auth_sessions.c.token_hash == _digest(token)))
            .mappings()
            .first()
        )
    if row is None:
        return None
    session = _session(row)
    if now >= session.expires_at or now - session.last_seen_at >= policy.idle:
        with db.begin() as conn:
            conn.execute(auth_sessions.delete().where(auth_sessions.c.id == session.id))
        return None
    if now - session.last_seen_at >= _TOUCH_EVERY:
        with db.begin() as conn:
            conn.execute(auth_sessions.update().where(auth_sessions.c.id == session.id).values(last_seen_at=now))
    return session


def set_pending_secret(db: sa.Engine, session_id: int, secret: str | None) -> None:
    with db.begin() as conn:
        conn.execute(auth_sessions.update().where(auth_sessions.c.id == session_id).values(pending_totp_secret=secret))


def end_session(db: sa.Engine | sa.Connection, token: str) -> None:
    statement = auth_sessions.delete().where(auth_sessions.c.token_hash == _digest(token))
    if isinstance(db, sa.Engine):
        with db.begin() as conn:
            conn.execute(statement)
    else:
        db.execute(statement)


def end_user_sessions(conn: sa.Connection, user_id: int, *, keep_session_id: int | None = None) -> int:
    """Sign a user out everywhere (optionally except the current session); returns how many ended."""
    statement = auth_sessions.delete().where(auth_sessions.c.user_id == user_id)
    if keep_session_id is not None:
        statement = statement.where(auth_sessions.c.id != keep_session_id)
    return int(conn.execute(statement).rowcount)


def revoke_session(conn: sa.Connection, user_id: int, session_id: int) -> bool:
    """End one of the user's own sessions; False if it is not theirs or already gone."""
    statement = auth_sessions.delete().where(auth_sessions.c.id == session_id, auth_sessions.c.user_id == user_id)
    return int(conn.execute(statement).rowcount) == 1


def list_sessions(db: sa.Engine, clock: Clock, policy: SessionPolicy, user_id: int) -> list[Session]:
    """The user's signed-in sessions that are still live, newest activity first."""
    now = clock.now()
    with db.connect() as conn:
        rows = (
            conn.execute(
                sa.select(auth_sessions)
                .where(
                    auth_sessions.c.user_id == user_id,
                    auth_sessions.c.stage == "full",
                    auth_sessions.c.expires_at > now,
                    auth_sessions.c.last_seen_at > now - policy.idle,
                )
                .order_by(auth_sessions.c.last_seen_at.desc(), auth_sessions.c.id.desc())
            )
            .mappings()
            .all()
        )
    return [_session(row) for row in rows]


def purge_expired(conn: sa.Connection, clock: Clock, policy: SessionPolicy) -> int:
    now = clock.now()
    statement = auth_sessions.delete().where(
        sa.or_(auth_sessions.c.expires_at <= now, auth_sessions.c.last_seen_at <= now - policy.idle)
    )
    return int(conn.execute(statement).rowcount)


# --- an operator's own sessions, as audited changes (the unit's actor is that operator) -----------


def revoke_own_session(uow: UnitOfWork, session_id: int) -> bool:
    """End one of the acting operator's sessions (audited session.revoked); False if not theirs or gone."""
    user_id = _operator_id(uow)
    if not revoke_session(uow.conn, user_id, session_id):
        return False
    uow.audit("session.revoked", target=uow.actor.label, target_id=user_id, details={"session_id": session_id})
    return True


def end_own_sessions(uow: UnitOfWork) -> int:
    """Sign the acting operator out everywhere (audited sessions.ended_all); returns how many ended."""
    user_id = _operator_id(uow)
    ended = end_user_sessions(uow.conn, user_id)
    uow.audit("sessions.ended_all", target=uow.actor.label, target_id=user_id, details={"sessions_ended": ended})
    return ended


def sign_out(uow: UnitOfWork, token: str) -> None:
    """End the session `token` names, audited as the operator's logout."""
    end_session(uow.conn, token)
    uow.audit("logout", target=uow.actor.label, target_id=_operator_id(uow))


def _operator_id(uow: UnitOfWork) -> int:
    assert uow.actor.kind == "operator" and uow.actor.id is not None, "only an operator has sessions"
    return uow.actor.id
