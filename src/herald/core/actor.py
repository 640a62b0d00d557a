"""Who acts: an operator, an API key, the CLI or the system itself; carried by every unit of work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorKind = Literal["operator", "api_key", "cli", "system"]


@dataclass(frozen=True)
class Actor:
    """`label` is what the audit log shows; `id` is the operator's or API key's id (per `kind`)."""

    label: str
    id: int | None = None
    ip: str | None = None
    kind: ActorKind = "operator"

    @classmethod
    def operator(cls, user_id: int, email: str, ip: str | None = None) -> Actor:
        return cls(email[:320], id=user_id, ip=ip, kind="operator")

    @classmethod
    def api_key(cls, key_id: int, name: str, ip: str | None = None) -> Actor:
        return cls(f"api key {name}"[:320], id=key_id, ip=ip, kind="api_key")


SYSTEM = Actor("system", kind="system")
CLI = Actor("cli", kind="cli")
