"""What passes from deciding to sending to completing: a Job per claimed row, and completions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from herald.channels.base import Channel, ChannelProvider, DeliveryError, EmailContent, Receipt, RenderedMessage
from herald.delivery import ledger
from herald.delivery.failover import Outcome
from herald.delivery.reconcile import Reconciled


def rendered_message(row: Mapping[str, Any], channel: str, reference: str) -> RenderedMessage:
    """The attempt's wire content, from what the planner rendered and stored on the row."""
    to = row["addresses"][channel]
    parts = row["content"].get(channel, {})
    metadata: dict[str, str] = {"message_id": str(row["id"])}
    if channel == "email":
        email = EmailContent(subject=parts["subject"], text=parts.get("text") or "", html=parts.get("html"))
        return RenderedMessage(reference=reference, channel=Channel.EMAIL, to=to, email=email, metadata=metadata)
    if channel == "webhook":
        body = json.dumps(parts["payload"], separators=(",", ":"), sort_keys=True)
        return RenderedMessage(reference=reference, channel=Channel.WEBHOOK, to=to, body=body, metadata=metadata)
    body = parts.get("text") if channel == "voice" else parts.get("body")
    return RenderedMessage(reference=reference, channel=Channel(channel), to=to, body=body, metadata=metadata)


@dataclass
class Job:
    kind: Literal["send", "reconcile"]
    claim: ledger.Claim
    provider: ChannelProvider
    attempt: dict[str, Any]
    message: RenderedMessage
    origin: str = "new"  # new | crashed (adopted from a dead worker) | unknown
    outcome: Outcome | None = None
    receipt: Receipt | None = None
    error: DeliveryError | None = None
    reconciled: Reconciled | None = None
    # A send must start within the first half of the claim's lease (monotonic clock) and is cut off after
    # the second half: every byte it writes has left before the lease ends and another worker may take over.
    send_before: float = float("inf")
    late: bool = False  # not started in time: nothing was sent


@dataclass
class Batch:
    """What one claim transaction decided: jobs to run after commit, completions to apply now."""

    jobs: list[Job] = field(default_factory=list)
    now_done: list[ledger.Completion] = field(default_factory=list)
    # New attempts decided row by row, recorded together at the end of the claim (`decide._open_attempts`).
    starts: list[tuple[ledger.NewAttempt, ChannelProvider]] = field(default_factory=list)


def changed(
    claimed: ledger.Claim,
    change: ledger.Change,
    attempt_id: int | None = None,
    attempt_values: Mapping[str, Any] | None = None,
    **extra: Any,
) -> ledger.Completion:
    """A transition's change as the fenced completion the ledger applies."""
    values = {**change.row_values(), **extra}
    return ledger.Completion(claimed.id, claimed.token, values, attempt_id, attempt_values or {})


def done(
    claimed: ledger.Claim,
    status: str,
    *,
    attempt_id: int | None = None,
    attempt_values: Mapping[str, Any] | None = None,
    **values: Any,
) -> ledger.Completion:
    return ledger.Completion(claimed.id, claimed.token, {"status": status, **values}, attempt_id, attempt_values or {})
