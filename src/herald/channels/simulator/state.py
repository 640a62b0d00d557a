"""The simulator's memory: its account, the messages and calls it accepted, and its request log."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herald.channels.twilio_client import API_VERSION

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
MIN_AUTH_TOKEN_CHARS = 16


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    # No default: a token everyone knows would let anyone on the host send "as Herald" and forge callbacks.
    # Herald gives each installation its own (delivery.bootstrap.simulator_auth_token).
    auth_token: str
    account_sid: str = DEFAULT_ACCOUNT_SID
    log_path: Path | None = None
    # Pause before each status callback, so callbacks can arrive after the create response (as they do).
    callback_delay_seconds: float = 0.05

    def __post_init__(self) -> None:
        if len(self.auth_token) < MIN_AUTH_TOKEN_CHARS:
            raise ValueError(f"the simulator's auth token needs at least {MIN_AUTH_TOKEN_CHARS} characters")


def new_sid(prefix: str) -> str:
    """`SM`/`CA` + 32 hex characters: 34 in all, as Twilio's SID patterns require."""
    return prefix + secrets.token_hex(16)


def rfc2822(when: dt.datetime | None) -> str | None:
    return None if when is None else email.utils.format_datetime(when.astimezone(dt.UTC))


@dataclass(slots=True)
class Submission:
    """One accepted Message or Call; `resource` says which."""

    resource: str  # "Messages" | "Calls"
    sid: str
    account_sid: str
    to: str
    sender: str | None
    body: str | None
    status: str
    created: dt.datetime
    updated: dt.datetime
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    callback_events: tuple[str, ...] = ()
    error_code: int | None = None
    sent: dt.datetime | None = None

    def uri(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/{self.resource}/{self.sid}.json"

    def to_json(self) -> dict[str, Any]:
        common: dict[str, Any] = {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "to": self.to,
            "from": self.sender,
            "status": self.status,
            "direction": "outbound-api",
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(self.updated),
            "price": None,
            "price_unit": "USD",
            "uri": self.uri(),
        }
        if self.resource == "Calls":
            return common | {"start_time": rfc2822(self.sent), "end_time": None, "duration": None}
        return common | {
            "body": self.body,
            "date_sent": rfc2822(self.sent),
            "error_code": self.error_code,
            "error_message": None,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "subresource_uris": {"media": self.uri().removesuffix(".json") + "/Media.json"},
        }


@dataclass
class Store:
    """Submissions by SID, in creation order; the list endpoints read them newest first."""

    submissions: dict[str, Submission] = field(default_factory=dict)

    def add(self, submission: Submission) -> None:
        self.submissions[submission.sid] = submission

    def get(self, resource: str, sid: str) -> Submission | None:
        found = self.submissions.get(sid)
        return found if found is not None and found.resource == resource else None

    def newest_first(self, resource: str, filters: dict[str, str]) -> list[Submission]:
        chosen = [
            s
            for s in self.submissions.values()
            if s.resource == resource and filters.get("To", s.to) == s.to and filters.get("From", s.sender) == s.sender
        ]
        return list(reversed(chosen))


class RequestLog:
    """Every request received, as JSON lines in memory and, if configured, appended to a file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True)
        with self._lock:
            self._entries.append(entry)
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as handle:
                    handle.write(line + "\n")

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)
