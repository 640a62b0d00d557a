"""The one channel vocabulary: channels, message classes and what content each channel carries."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    VOICE = "voice"
    WEBHOOK = "webhook"


class MessageClass(StrEnum):
    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"
    INCIDENT = "incident"  # a service notice: it needs what transactional messages need


@dataclass(frozen=True, slots=True)
class ContentSpec:
    """What one channel's content is made of.

    `parts` maps each inline content field (as the API and CLI spell it) to its template part name, in
    the order the fields are listed; `required` must be present, and at least one of `one_of` too.
    `address` says which of the recipient's addresses the channel uses; `consent` whether the consent
    ledger governs it (a webhook goes to the caller's own URL, so it does not).
    """

    parts: Mapping[str, str]
    required: tuple[str, ...]
    max_length: Mapping[str, int]
    address: str  # email | phone | url (from the content)
    consent: bool
    one_of: tuple[str, ...] = ()
    summary: str | None = None  # the field that says in one line what a message is
    numbered_params: bool = False  # template parts `<channel>.param.N` (WhatsApp template parameters)


CONTENT: Mapping[Channel, ContentSpec] = MappingProxyType(
    {
        Channel.EMAIL: ContentSpec(
            parts={"subject": "email.subject", "text": "email.text", "html": "email.html"},
            required=("subject",),
            one_of=("text", "html"),
            max_length={"subject": 998},
            address="email",
            consent=True,
            summary="subject",
        ),
        Channel.SMS: ContentSpec(
            parts={"body": "sms.body"},
            required=("body",),
            max_length={"body": 4096},
            address="phone",
            consent=True,
            summary="body",
        ),
        Channel.WHATSAPP: ContentSpec(
            parts={"body": "whatsapp.body"},
            required=("body",),
            max_length={"body": 4096},
            address="phone",
            consent=True,
            summary="body",
            numbered_params=True,
        ),
        Channel.VOICE: ContentSpec(
            parts={"text": "voice.text"},
            required=("text",),
            max_length={"text": 4000},
            address="phone",
            consent=True,
            summary="text",
        ),
        # A webhook carries the caller's JSON payload as it is: nothing to render, no template parts.
        Channel.WEBHOOK: ContentSpec(
            parts={},
            required=("url", "payload"),
            max_length={"url": 2000},
            address="url",
            consent=False,
        ),
    }
)

CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)
MESSAGE_CLASSES: tuple[str, ...] = tuple(c.value for c in MessageClass)
# The channels the consent ledger records and the policy rules on.
CONSENT_CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel if CONTENT[c].consent)
# Inline content field → template part name, per channel that renders (webhook payloads are not rendered).
PARTS: Mapping[str, Mapping[str, str]] = MappingProxyType({c.value: s.parts for c, s in CONTENT.items() if s.parts})
REQUIRED: Mapping[str, tuple[str, ...]] = MappingProxyType({c.value: s.required for c, s in CONTENT.items()})
# (channel, field) pairs that summarise a message in one line, most telling first.
SUMMARY_FIELDS: tuple[tuple[str, str], ...] = tuple((c.value, s.summary) for c, s in CONTENT.items() if s.summary)


def _part_name_pattern() -> re.Pattern[str]:
    names = [re.escape(part) for spec in CONTENT.values() for part in spec.parts.values()]
    params = [rf"{re.escape(c.value)}\.param\.[1-9][0-9]?" for c, s in CONTENT.items() if s.numbered_params]
    return re.compile(rf"^(?:{'|'.join(names + params)})$")


# The template part names a stored template may have.
PART_NAME = _part_name_pattern()


def describe_part_names() -> str:
    """The part names in words, for an error message."""
    names = [part for spec in CONTENT.values() for part in spec.parts.values()]
    names += [f"{c.value}.param.N" for c, s in CONTENT.items() if s.numbered_params]
    return ", ".join(names[:-1]) + f" or {names[-1]}"


def consent_purpose(message_class: str) -> str:
    """The consent purpose a message class needs: incident notices are service messages (transactional)."""
    return "marketing" if message_class == MessageClass.MARKETING else "transactional"
