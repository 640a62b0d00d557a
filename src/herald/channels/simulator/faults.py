"""Scripted misbehaviour: fault rules set through /_sim/faults, and Twilio's magic test numbers."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    RATE_LIMIT = "rate_limit"  # HTTP 429 (code 20429) with Retry-After; nothing stored
    SERVER_ERROR = "server_error"  # HTTP 500/503; nothing stored
    REJECT = "reject"  # HTTP 4xx with a Twilio error code (default 21211); nothing stored
    RESET = "reset"  # stored and counted, then the connection is reset without an answer
    HANG = "hang"  # never answers; nothing stored
    UNDELIVERED = "undelivered"  # accepted, then an `undelivered` callback (default 30003)
    FAILED = "failed"  # accepted, then a `failed` callback (default 30005)


class FaultError(ValueError):
    """A fault rule that cannot be understood."""


# Twilio's documented magic "To" numbers for test credentials, and what they answer.
MAGIC_NUMBERS: dict[str, int] = {
    "+15005550001": 21211,  # invalid number
    "+15005550002": 21612,  # cannot route
    "+15005550003": 21408,  # no international permission
    "+15005550004": 21610,  # recipient replied STOP
    "+15005550009": 21614,  # not a mobile number
}

_DEFAULT_CODES = {FaultKind.REJECT: 21211, FaultKind.UNDELIVERED: 30003, FaultKind.FAILED: 30005}


@dataclass(slots=True)
class FaultRule:
    """Applies to requests whose resource and destination match; `times` None means until cleared."""

    kind: FaultKind
    to: str | None = None
    resource: str | None = None
    times: int | None = None
    status: int | None = None
    retry_after: str | None = None
    code: int | None = None
    call_status: str | None = None  # for calls that end badly: busy | no-answer | failed

    def matches(self, resource: str, to: str) -> bool:
        bare = to.removeprefix("whatsapp:")
        return (self.resource in (None, resource)) and (self.to in (None, to, bare))

    def error_code(self) -> int | None:
        return self.code if self.code is not None else _DEFAULT_CODES.get(self.kind)

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def _optional_int(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"{name} must be an integer")
    return value


def parse_rule(raw: object) -> FaultRule:
    """Build a rule from its JSON form; see docs/channels/simulator.md."""
    if not isinstance(raw, dict):
        raise FaultError("a fault rule is a JSON object")
    try:
        kind = FaultKind(str(raw.get("kind")))
    except ValueError as exc:
        raise FaultError(f"unknown fault kind {raw.get('kind')!r}") from exc
    resource = raw.get("resource")
    if resource not in (None, "Messages", "Calls"):
        raise FaultError("resource must be Messages or Calls")
    # One use unless told otherwise; an explicit `"times": null` keeps the rule until it is cleared.
    times = _optional_int(raw | {"times": raw.get("times", 1)}, "times")
    if times is not None and times < 1:
        raise FaultError("times must be at least 1")
    retry_after = raw.get("retry_after")
    return FaultRule(
        kind=kind,
        to=str(raw["to"]) if raw.get("to") is not None else None,
        resource=resource,
        times=times,
        status=_optional_int(raw, "status"),
        retry_after=str(retry_after) if retry_after is not None else None,
        code=_optional_int(raw, "code"),
        call_status=str(raw["call_status"]) if raw.get("call_status") else None,
    )


class FaultBook:
    """Rules in the order they were added; the first match wins and uses up one of its `times`."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, resource: str, to: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(resource, to):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times == 0:
                            self._rules.remove(rule)
                    return rule
        return None
