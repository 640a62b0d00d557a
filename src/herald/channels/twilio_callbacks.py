"""Twilio status callbacks: verify the signature first, then map Message/Call statuses to EventKind."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from herald.channels.base import EventKind, OutcomeKind, ProviderEvent, ProviderOutcome, SignatureError
from herald.channels.twilio_client import parse_rfc2822
from herald.channels.twilio_errors import outcome_for_code
from herald.channels.twilio_signature import SIGNATURE_HEADER, body_sha256_matches, is_valid_signature

REFERENCE_PARAM = "hub_msg"  # our reference rides in the signed StatusCallback URL (WIRE-FORMATS §1)

MESSAGE_STATUS: dict[str, EventKind] = {
    "accepted": EventKind.QUEUED,
    "scheduled": EventKind.QUEUED,
    "queued": EventKind.QUEUED,
    "sending": EventKind.QUEUED,
    "sent": EventKind.SENT,
    "delivered": EventKind.DELIVERED,
    "undelivered": EventKind.UNDELIVERED,
    "failed": EventKind.FAILED,
    "canceled": EventKind.FAILED,
    "read": EventKind.READ,
}
CALL_STATUS: dict[str, EventKind] = {
    "queued": EventKind.QUEUED,
    "initiated": EventKind.QUEUED,
    "ringing": EventKind.SENT,
    "in-progress": EventKind.ANSWERED,
    "completed": EventKind.DELIVERED,
    "busy": EventKind.UNDELIVERED,
    "no-answer": EventKind.UNDELIVERED,
    "failed": EventKind.FAILED,
    "canceled": EventKind.FAILED,
}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _reference_in(url: str) -> str | None:
    return next((v for k, v in parse_qsl(urlsplit(url).query) if k == REFERENCE_PARAM), None)


def verified_params(url: str, headers: Mapping[str, str], body: bytes, auth_token: str) -> list[tuple[str, str]]:
    """The callback's form parameters, only once its signature is known to be good."""
    signature = _header(headers, SIGNATURE_HEADER)
    if not signature:
        raise SignatureError("missing X-Twilio-Signature")
    body_ok = body_sha256_matches(url, body)
    if body_ok is False:
        raise SignatureError("bodySHA256 does not match the body")
    try:
        params = [] if body_ok else parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureError("callback body is not a readable form") from exc
    if not is_valid_signature(url, params, signature, auth_token):
        raise SignatureError("X-Twilio-Signature does not match")
    return params


def parse_status_callback(
    *, provider: str, auth_token: str, url: str, headers: Mapping[str, str], body: bytes
) -> tuple[ProviderEvent, ...]:
    """One event per status callback; () for signed requests that are not a status we track."""
    fields = dict(verified_params(url, headers, body, auth_token))
    if "MessageStatus" in fields and "MessageSid" in fields:
        kind = MESSAGE_STATUS.get(fields["MessageStatus"])
        sid, occurred = fields["MessageSid"], None
    elif "CallStatus" in fields and "CallSid" in fields:
        kind = CALL_STATUS.get(fields["CallStatus"])
        sid, occurred = fields["CallSid"], parse_rfc2822(fields.get("Timestamp"))
    else:
        return ()  # signed but not a status change (e.g. an inbound message): not ours to map
    if kind is None:
        return ()  # a status we do not track (receiving, partially_delivered, …): accept and ignore
    event = ProviderEvent(
        provider=provider,
        kind=kind,
        provider_message_id=sid,
        reference=_reference_in(url),
        occurred_at=occurred,
        error_code=fields.get("ErrorCode") or None,
        raw=body,
        outcome=_outcome(kind, fields.get("ErrorCode") or None),
    )
    return (event,)


def _outcome(kind: EventKind, error_code: str | None) -> ProviderOutcome | None:
    if kind in (EventKind.DELIVERED, EventKind.READ, EventKind.ANSWERED):
        return ProviderOutcome(OutcomeKind.DELIVERED)
    if kind in (EventKind.UNDELIVERED, EventKind.FAILED):
        return outcome_for_code(error_code) or ProviderOutcome(OutcomeKind.FAILED, code=error_code)
    return None
