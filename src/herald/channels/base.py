"""The ChannelProvider port, the values that cross it, and the delivery error tree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

# The vocabulary lives in herald.core.channels; adapters keep importing Channel from their port.
from herald.core.channels import Channel as Channel


@dataclass(frozen=True, slots=True)
class EmailContent:
    subject: str
    text: str
    html: str | None = None
    # Channel-specific headers (List-Unsubscribe, …) are set by the planner as data, applied by the adapter.
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """One attempt's fully rendered content, addressed to one recipient on one channel."""

    reference: str  # our own id for this attempt; sent to the provider so outcomes can be reconciled
    channel: Channel
    to: str  # e-mail address, E.164 number, or webhook URL
    sender: str | None = None
    email: EmailContent | None = None
    body: str | None = None  # SMS / WhatsApp text, voice text (<Say>), webhook JSON payload
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a provider said when it accepted a message."""

    reference: str
    provider: str
    provider_message_id: str | None
    status: str  # provider's own word, e.g. "queued", "accepted", "250"
    accepted_at: dt.datetime


class EventKind(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    READ = "read"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ANSWERED = "answered"


class OutcomeKind(StrEnum):
    """What a provider finally said about one attempt, in the words the delivery core acts on."""

    DELIVERED = "delivered"
    FAILED = "failed"  # this attempt failed; nothing is known against the address
    BOUNCED = "bounced"  # the address itself refused it (see Severity)
    COMPLAINED = "complained"  # the recipient marked it as spam
    OPTED_OUT = "opted_out"  # the recipient opted out at the provider (e.g. replied STOP)


class Severity(StrEnum):
    HARD = "hard"  # permanent: the address must never be tried again
    SOFT = "soft"  # transient at the address (mailbox full, handset off): suppress after a count


@dataclass(frozen=True, slots=True)
class ProviderOutcome:
    """A typed outcome an adapter returns; `detail` keeps the provider's own words (SMTP reply, error code)."""

    kind: OutcomeKind
    severity: Severity | None = None  # only for BOUNCED
    code: str | None = None
    detail: str = ""

    @property
    def suppresses(self) -> bool:
        """Whether this outcome alone closes the address on its channel (a soft bounce only counts)."""
        if self.kind is OutcomeKind.BOUNCED:
            return self.severity is Severity.HARD
        return self.kind in (OutcomeKind.COMPLAINED, OutcomeKind.OPTED_OUT)


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """A provider callback normalised into our closed vocabulary; the raw payload is kept."""

    provider: str
    kind: EventKind
    provider_message_id: str | None
    reference: str | None
    occurred_at: dt.datetime | None
    error_code: str | None = None
    raw: bytes = b""
    outcome: ProviderOutcome | None = None  # set by the adapter when the event says something about the address


class ChannelProvider(Protocol):
    name: str
    channel: Channel

    @property
    def rate_limit_per_second(self) -> float | None:
        """Messages per second the account accepts; None = none declared. The worker enforces it."""
        ...

    async def send(self, message: RenderedMessage) -> Receipt:
        """Submit once. Raise only DeliveryError subclasses (translate foreign errors with `from exc`)."""
        ...

    def parse_callback(self, url: str, headers: Mapping[str, str], body: bytes) -> Sequence[ProviderEvent]:
        """Verify the callback's signature first (raise SignatureError), then normalise it."""
        ...


class FinalDotMarks(Protocol):
    """Told, synchronously, just before an attempt's last byte leaves (SMTP: the end-of-data "."): whoever
    implements it records that the attempt may from now on have been accepted (delivery/wire_marks.py)."""

    def before_final_dot(self, reference: str) -> None: ...

    def mark_then_write(self, reference: str, fd: int, data: bytes) -> int:
        """The mark, then `os.write(fd, data)` with nothing in between; returns the bytes written."""
        ...


@runtime_checkable
class MarksFinalDot(Protocol):
    """A provider that tells its `wire_marks` (when it has some) before each attempt's final byte leaves."""

    wire_marks: FinalDotMarks | None


class DeliveryError(Exception):
    """Base of the delivery error tree (ARCHITECTURE.md §2 rule 4)."""

    def __init__(
        self, message: str, *, provider: str = "", code: str | None = None, outcome: ProviderOutcome | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.code = code  # provider's own error/status code, e.g. Twilio 21211 or SMTP 550
        # What the adapter concluded about the address (a bounce, an opt-out), if anything.
        self.outcome = outcome


class ProviderFailure(DeliveryError):
    """Another attempt or another provider may succeed (timeout before send, 5xx, bad credentials)."""


class RateLimited(ProviderFailure):
    def __init__(self, message: str, *, retry_after: float | None, provider: str = "", code: str | None = None) -> None:
        super().__init__(message, provider=provider, code=code)
        self.retry_after = retry_after


class OutcomeUnknown(DeliveryError):
    """The request may have been accepted (reset after send, timeout after body): reconcile, never retry."""


class MessageRejected(DeliveryError):
    """No provider will succeed for this recipient/content (invalid or blocked recipient, content refused)."""


class SignatureError(Exception):
    """A callback's signature is missing or wrong; the callback must be refused unread."""
