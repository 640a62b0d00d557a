"""Create, list, revoke and check API keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from herald.core.actor import Actor
from herald.core.errors import InvalidInputError, NotFoundError, UnauthorizedError
from herald.db.apikeys_tables import api_keys
from herald.db.engine import read_connection
from herald.db.unit_of_work import UnitOfWork

PREFIX = "hk_"


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    secret: str  # shown once, never stored


def _digest(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe here (no dictionary to attack), unlike passwords.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(uow: UnitOfWork, name: str) -> CreatedKey:
    name = name.strip()
    if not name:
        raise InvalidInputError("An API key needs a name.", field="name")
    secret = PREFIX + secrets.token_urlsafe(32)
    key_id = uow.conn.scalar(
        api_keys.insert()
        .values(name=name, prefix=secret[:10], key_hash=_digest(secret), created_at=uow.now)
        .returning(api_keys.c.id)
    )
    assert key_id is not None
    uow.audit("apikey.created", target=f"api key {name}", target_id=key_id, details={"prefix": secret[:10]})
    return CreatedKey(id=key_id, name=name, secret=secret)


def list_keys(engine: sa.Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys).order_by(api_keys.c.id)).mappings().all()
    return [{k: v for k, v in row.items() if k != "key_hash"} for row in rows]


def revoke_key(uow: UnitOfWork, key_id: int) -> None:
    name = uow.conn.scalar(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=uow.now)
        .returning(api_keys.c.name)
    )
    if name is None:
        raise NotFoundError(f"No active API key with id {key_id}.", id=key_id)
    uow.audit("apikey.revoked", target=f"api key {name}", target_id=key_id)


def check_key(engine: sa.Engine, secret: str, ip: str | None = None) -> Actor:
    """Who a valid, unrevoked secret is (the actor API requests run as), or raise UnauthorizedError."""
    with read_connection(engine) as conn:
        row = conn.execute(
            sa.select(api_keys.c.id, api_keys.c.name).where(
                api_keys.c.key_hash == _digest(secret), api_keys.c.revoked_at.is_(None)
            )
        ).first()
    if row is None:
        raise UnauthorizedError("The API key is wrong or revoked.")
    return Actor.api_key(int(row.id), str(row.name), ip)
