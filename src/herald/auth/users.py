"""Operator accounts: create, list, roles, and the 2FA settings an admin may change (never read)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, cast

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from herald.auth import passwords, recovery, sessions
from herald.auth.audit import Actor, record_audit
from herald.core.clock import Clock
from herald.core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from herald.db.auth_tables import users
from herald.db.unit_of_work import UnitOfWork

Role = Literal["admin", "marketer", "agent"]
ROLES: tuple[Role, ...] = ("admin", "marketer", "agent")
ROLE_LABELS: dict[str, str] = {"admin": "Admin", "marketer": "Marketer", "agent": "Agent"}


@dataclass(frozen=True)
class User:
    id: int
    email: str
    role: Role
    totp_enrolled: bool
    totp_required: bool
    totp_relaxed_reason: str | None
    totp_relaxed_at: dt.datetime | None
    created_at: dt.datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def actor(self, ip: str | None = None) -> Actor:
        return Actor.operator(self.id, self.email, ip)


def _user(row: sa.RowMapping) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        role=cast(Role, row["role"]),
        totp_enrolled=row["totp_secret"] is not None,
        totp_required=bool(row["totp_required"]),
        totp_relaxed_reason=row["totp_relaxed_reason"],
        totp_relaxed_at=row["totp_relaxed_at"],
        created_at=row["created_at"],
    )


def normalise_email(email: str) -> str:
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInputError(f"That is not a valid e-mail address: {exc}", field="email") from exc
    return result.normalized.lower()


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidInputError(f"Role must be one of {', '.join(ROLES)}.", field="role")
    return role


def any_users(db: sa.Engine) -> bool:
    with db.connect() as conn:
        return conn.scalar(sa.select(users.c.id).limit(1)) is not None


def get_user(db: sa.Engine | sa.Connection, user_id: int) -> User:
    statement = sa.select(users).where(users.c.id == user_id)
    if isinstance(db, sa.Engine):
        with db.connect() as conn:
            row = conn.execute(statement).mappings().first()
    else:
        row = db.execute(statement).mappings().first()
    if row is None:
        raise NotFoundError(f"No user with id {user_id}.", id=user_id)
    return _user(row)


def find_user(db: sa.Engine, email: str) -> User | None:
    with db.connect() as conn:
        row = conn.execute(sa.select(users).where(users.c.email == email.strip().lower())).mappings().first()
    return _user(row) if row else None


def list_users(db: sa.Engine) -> list[User]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(users).order_by(users.c.email)).mappings().all()
    return [_user(row) for row in rows]


def _insert_user(conn: sa.Connection, clock: Clock, email: str, password_hash: str, role: Role) -> int:
    exists = conn.scalar(sa.select(users.c.id).where(users.c.email == email))
    if exists is not None:
        raise ConflictError("An account with this e-mail already exists.", field="email")
    now = clock.now()
    user_id = conn.scalar(
        users.insert()
        .values(
            email=email,
            password_hash=password_hash,
            role=role,
            created_at=now,
            password_changed_at=now,
        )
        .returning(users.c.id)
    )
    assert user_id is not None
    return int(user_id)


def create_user(uow: UnitOfWork, *, email: str, password: str, role: str) -> User:
    """Create an account; it must enrol in 2FA at first sign-in."""
    address, checked_role = normalise_email(email), check_role(role)
    passwords.check_policy(password, email=address)
    hashed = passwords.hash_password(password)
    user_id = _insert_user(uow.conn, uow.clock, address, hashed, checked_role)
    uow.audit("user.created", target=address, target_id=user_id, details={"role": role})
    return get_user(uow.conn, user_id)


def create_first_admin(db: sa.Engine, clock: Clock, *, email: str, password: str, ip: str | None) -> User:
    """The one-time set-up: create the first admin, refusing once any account exists."""
    address = normalise_email(email)
    passwords.check_policy(password, email=address)
    hashed = passwords.hash_password(password)
    with db.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent set-ups; SQLite's BEGIN IMMEDIATE already does.
            conn.exec_driver_sql("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        if conn.scalar(sa.select(users.c.id).limit(1)) is not None:
            raise ConflictError("Set-up is already done; sign in instead.")
        user_id = _insert_user(conn, clock, address, hashed, "admin")
        record_audit(
            conn,
            clock,
            "user.created",
            actor=Actor(address, id=user_id, ip=ip),
            target=address,
            target_id=user_id,
            details={"role": "admin", "via": "setup"},
        )
        return get_user(conn, user_id)


def _admin_count(conn: sa.Connection) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).where(users.c.role == "admin")) or 0)


def change_role(uow: UnitOfWork, user_id: int, role: str) -> User:
    new_role = check_role(role)
    conn = uow.conn
    user = get_user(conn, user_id)
    if user.role == new_role:
        return user
    if user.role == "admin" and _admin_count(conn) <= 1:
        raise ConflictError("Herald needs at least one admin; promote someone else first.", field="role")
    conn.execute(users.update().where(users.c.id == user_id).values(role=new_role))
    uow.audit("role.changed", target=user.email, target_id=user_id, details={"from": user.role, "to": new_role})
    return get_user(conn, user_id)


def relax_2fa(uow: UnitOfWork, user_id: int, reason: str) -> User:
    """Let one account sign in without a second factor; the reason is kept with the account and logged."""
    reason = reason.strip()
    if len(reason) < 5:
        raise InvalidInputError("Say why 2FA is relaxed for this account (at least 5 characters).", field="reason")
    conn, actor = uow.conn, uow.actor
    user = get_user(conn, user_id)
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(
            totp_required=False,
            totp_relaxed_reason=reason[:2000],
            totp_relaxed_by=actor.id if actor.kind == "operator" else None,
            totp_relaxed_at=uow.now,
        )
    )
    uow.audit("2fa.relaxed", target=user.email, target_id=user_id, details={"reason": reason[:2000]})
    return get_user(conn, user_id)


def require_2fa(uow: UnitOfWork, user_id: int) -> User:
    """Undo a relaxation: the account must use (and, if needed, enrol) 2FA at its next sign-in."""
    conn = uow.conn
    user = get_user(conn, user_id)
    conn.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(totp_required=True, totp_relaxed_reason=None, totp_relaxed_by=None, totp_relaxed_at=None)
    )
    uow.audit("2fa.required", target=user.email, target_id=user_id)
    return get_user(conn, user_id)


def reset_2fa(uow: UnitOfWork, user_id: int) -> User:
    """Remove another operator's second factor and recovery codes and sign them out everywhere.

    They enrol again at their next sign-in. The secret is discarded, never shown to the admin.
    """
    if uow.actor.kind == "operator" and uow.actor.id == user_id:
        raise ForbiddenError("You cannot reset your own 2FA; ask another admin (or use `herald users reset-2fa`).")
    conn = uow.conn
    user = get_user(conn, user_id)
    conn.execute(
        users.update().where(users.c.id == user_id).values(totp_secret=None, totp_enrolled_at=None, totp_last_step=None)
    )
    recovery.delete_codes(conn, user_id)
    ended = sessions.end_user_sessions(conn, user_id)
    uow.audit("2fa.reset", target=user.email, target_id=user_id, details={"sessions_ended": ended})
    return get_user(conn, user_id)


def stored_password_hash(db: sa.Engine, user_id: int) -> str | None:
    with db.connect() as conn:
        value = conn.scalar(sa.select(users.c.password_hash).where(users.c.id == user_id))
    return str(value) if value is not None else None


def change_password(
    db: sa.Engine,
    clock: Clock,
    user: User,
    *,
    current: str,
    new: str,
    keep_session_id: int | None,
    ip: str | None = None,
) -> int:
    """Change one's own password; every other session of the account ends. Returns how many ended."""
    if not passwords.verify_password(stored_password_hash(db, user.id), current):
        raise InvalidInputError("Your current password is not right.", field="current_password")
    passwords.check_policy(new, email=user.email)
    hashed = passwords.hash_password(new)
    with db.begin() as conn:
        conn.execute(
            users.update().where(users.c.id == user.id).values(password_hash=hashed, password_changed_at=clock.now())
        )
        ended = sessions.end_user_sessions(conn, user.id, keep_session_id=keep_session_id)
        record_audit(
            conn,
            clock,
            "password.changed",
            actor=user.actor(ip),
            target=user.email,
            target_id=user.id,
            details={"other_sessions_ended": ended},
        )
    return ended
