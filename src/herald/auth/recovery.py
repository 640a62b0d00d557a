"""Recovery codes: ten single-use codes per account, shown once and stored only as hashes."""

from __future__ import annotations

import base64
import hashlib
import secrets

import sqlalchemy as sa

from herald.core.clock import Clock
from herald.db.auth_tables import user_recovery_codes

CODE_COUNT = 10
_GROUPS, _GROUP_LEN = 5, 5  # 25 base32 characters = 125 random bits


def _new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(16)).decode("ascii").lower()[: _GROUPS * _GROUP_LEN]
    return "-".join(raw[i : i + _GROUP_LEN] for i in range(0, len(raw), _GROUP_LEN))


def normalise(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def digest(code: str) -> str:
    # Codes carry 125 random bits (>= 112, ASVS V6.5.2), so no dictionary attack is possible and a
    # plain SHA-256 is enough; a slow hash would make every recovery login try ten argon2 checks.
    return hashlib.sha256(normalise(code).encode("ascii")).hexdigest()


def replace_codes(conn: sa.Connection, clock: Clock, user_id: int) -> list[str]:
    """Invalidate every existing code and return ten new ones (the only time they are readable)."""
    conn.execute(user_recovery_codes.delete().where(user_recovery_codes.c.user_id == user_id))
    codes = [_new_code() for _ in range(CODE_COUNT)]
    now = clock.now()
    conn.execute(
        user_recovery_codes.insert(),
        [{"user_id": user_id, "code_hash": digest(code), "created_at": now} for code in codes],
    )
    return codes


def delete_codes(conn: sa.Connection, user_id: int) -> None:
    conn.execute(user_recovery_codes.delete().where(user_recovery_codes.c.user_id == user_id))


def use_code(conn: sa.Connection, clock: Clock, user_id: int, code: str) -> bool:
    """Spend one unused code; a single UPDATE makes two concurrent uses of one code yield one success."""
    if len(normalise(code)) != _GROUPS * _GROUP_LEN:
        return False
    spent = conn.execute(
        user_recovery_codes.update()
        .where(
            user_recovery_codes.c.user_id == user_id,
            user_recovery_codes.c.code_hash == digest(code),
            user_recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=clock.now())
    ).rowcount
    return spent == 1


def remaining(conn: sa.Connection, user_id: int) -> int:
    count = conn.scalar(
        sa.select(sa.func.count())
        .select_from(user_recovery_codes)
        .where(user_recovery_codes.c.user_id == user_id, user_recovery_codes.c.used_at.is_(None))
    )
    return int(count or 0)
