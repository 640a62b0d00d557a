"""The ChannelProvider port, the values that cross it, and the delivery error tree."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

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


class ChannelProvider(Protocol):
    name: str
    channel: Channel

    async def send(self, message: RenderedMessage) -> Receipt:
        """Submit once. Raise only DeliveryError subclasses (translate foreign errors with `from exc`)."""
        ...

    def parse_callback(self, url: str, headers: Mapping[str, str], body: bytes) -> Sequence[ProviderEvent]:
        """Verify the callback's signature first (raise SignatureError), then normalise it."""
        ...


class DeliveryError(Exception):
    """Base of the delivery error tree (ARCHITECTURE.md §2 rule 4)."""

    def __init__(self, message: str, *, provider: str = "", code: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.code = code  # provider's own error/status code, e.g. Twilio 21211 or SMTP 550


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
