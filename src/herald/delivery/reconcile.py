"""Unknown outcomes: ask the provider what an ambiguous attempt created, instead of sending it again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from herald.channels.base import ChannelProvider, DeliveryError, RenderedMessage

# Provider statuses that mean the submission exists but will never arrive.
_DEAD = frozenset({"failed", "undelivered", "canceled", "busy", "no-answer"})


class Submission(Protocol):
    sid: str
    status: str


@runtime_checkable
class Lookup(Protocol):
    """A provider that can list what it created for a recipient since an instant (Twilio and its simulator)."""

    async def find_submissions(self, message: RenderedMessage, *, since: dt.datetime) -> Sequence[Submission]: ...


@dataclass(frozen=True, slots=True)
class Reconciled:
    """found: the provider has it (sent, or dead); absent: it never arrived; unsupported: no way to ask."""

    verdict: Literal["found", "dead", "absent", "unsupported", "lookup_failed"]
    provider_message_id: str | None = None
    status: str | None = None
    detail: str = ""


def can_reconcile(provider: ChannelProvider) -> bool:
    return isinstance(provider, Lookup)


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
