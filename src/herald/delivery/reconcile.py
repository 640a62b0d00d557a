"""Unknown outcomes: ask the provider (or the relay's log) what an ambiguous attempt created, never re-send."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from herald.channels.base import ChannelProvider, DeliveryError, RenderedMessage
from herald.channels.postfix_log import Acceptance, LogUnavailable

# Provider statuses that mean the submission exists but will never arrive.
_DEAD = frozenset({"failed", "undelivered", "canceled", "busy", "no-answer"})


class Submission(Protocol):
    sid: str
    status: str


@runtime_checkable
class Lookup(Protocol):
    """A provider that can list what it created for a recipient since an instant (Twilio and its simulator)."""

    async def find_submissions(self, message: RenderedMessage, *, since: dt.datetime) -> Sequence[Submission]: ...


class AcceptanceLog(Protocol):
    """A relay that records what it accepted, by Message-ID (a local postfix's mail log)."""

    settle: dt.timedelta  # how long after the last possible write an absence is final

    def lookup(self, message_id: str, *, since: dt.datetime, sent_by: dt.datetime, now: dt.datetime) -> Acceptance: ...


@runtime_checkable
class MessageIds(Protocol):
    """An e-mail provider that can tell the Message-ID it puts on a message."""

    def message_id(self, message: RenderedMessage) -> str: ...


@dataclass(frozen=True, slots=True)
class Reconciled:
    """found: the provider has it (sent, or dead); absent: not found (yet); never_accepted: definitely not
    taken, a new attempt is safe; pending: too early to say, ask again at `retry_at`; unsupported: no way to ask.
    """

    verdict: Literal["found", "dead", "absent", "never_accepted", "pending", "unsupported", "lookup_failed"]
    provider_message_id: str | None = None
    status: str | None = None
    detail: str = ""
    retry_at: dt.datetime | None = None


def can_reconcile(provider: ChannelProvider, relay_log: AcceptanceLog | None = None) -> bool:
    return isinstance(provider, Lookup) or relay_log is not None


async def reconcile_relay(
    relay_log: AcceptanceLog,
    message_id: str,
    *,
    started_at: dt.datetime,
    sent_by: dt.datetime,
    now: dt.datetime,
) -> Reconciled:
    """Ask the relay's log whether it committed this Message-ID. `sent_by`: the instant by which whoever made
    the attempt had written its last byte (its lease's end), so silence after `sent_by + settle` is final."""
    try:
        answer = await asyncio.to_thread(relay_log.lookup, message_id, since=started_at, sent_by=sent_by, now=now)
    except LogUnavailable as exc:
        return Reconciled("lookup_failed", detail=str(exc))
    if answer == "accepted":
        return Reconciled("found", message_id, "accepted", detail="committed to the relay's queue")
    if answer == "not_accepted":
        return Reconciled("never_accepted", detail="not in the relay's log")
    return Reconciled("pending", detail="the relay's log may not show it yet", retry_at=sent_by + relay_log.settle)


async def reconcile(provider: ChannelProvider, message: RenderedMessage, started_at: dt.datetime) -> Reconciled:
    """Look the attempt up; never re-send from here. Several matches mean several submissions: report the first."""
    if not isinstance(provider, Lookup):
        return Reconciled("unsupported", detail=f"{provider.name} has no lookup")
    try:
        found = await provider.find_submissions(message, since=started_at)
    except DeliveryError as exc:
        return Reconciled("lookup_failed", detail=str(exc))
    if not found:
        return Reconciled("absent")
    # Oldest first: list results come newest first.
    first = found[-1]
    verdict: Literal["found", "dead"] = "dead" if first.status in _DEAD else "found"
    return Reconciled(verdict, first.sid, first.status, detail=f"{len(found)} submission(s) found")
