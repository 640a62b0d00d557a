"""Twilio's error codes and HTTP outcomes, translated into the delivery error tree (WIRE-FORMATS §5)."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from enum import StrEnum

import httpx

from herald.channels.base import (
    DeliveryError,
    MessageRejected,
    OutcomeKind,
    OutcomeUnknown,
    ProviderFailure,
    ProviderOutcome,
    RateLimited,
    Severity,
)


class Disposition(StrEnum):
    """What a Twilio error code means for the next step; the table below is WIRE-FORMATS §5's Class column."""

    REJECT_RECIPIENT = "reject_recipient"  # the address is bad or opted out on this channel
    FAIL_OVER = "fail_over"  # this channel cannot reach the person; another channel may
    RESEND_AS_TEMPLATE = "resend_as_template"  # WhatsApp outside the 24 h window
    PROVIDER_PROBLEM = "provider_problem"  # account, credentials, sender or compliance: alert, stop
    RETRY = "retry"  # transient at the provider or carrier


ERROR_CODES: dict[int, tuple[Disposition, str]] = {
    20003: (Disposition.PROVIDER_PROBLEM, "Authentication failed"),
    20429: (Disposition.RETRY, "Too many requests"),
    21211: (Disposition.REJECT_RECIPIENT, "Invalid 'To' phone number"),
    21408: (Disposition.PROVIDER_PROBLEM, "Permission to send to this region is not enabled"),
    21610: (Disposition.REJECT_RECIPIENT, "Recipient replied STOP (unsubscribed)"),
    21612: (Disposition.FAIL_OVER, "'To' not reachable with this To/From combination"),
    21614: (Disposition.FAIL_OVER, "'To' is not a valid mobile number"),
    30001: (Disposition.RETRY, "Queue overflow"),
    30002: (Disposition.PROVIDER_PROBLEM, "Account suspended"),
    30003: (Disposition.RETRY, "Unreachable destination handset"),
    30004: (Disposition.REJECT_RECIPIENT, "Message blocked"),
    30005: (Disposition.REJECT_RECIPIENT, "Unknown destination handset"),
    30006: (Disposition.FAIL_OVER, "Landline or unreachable carrier"),
    30007: (Disposition.PROVIDER_PROBLEM, "Carrier violation (filtered)"),
    30008: (Disposition.RETRY, "Unknown error"),
    30032: (Disposition.PROVIDER_PROBLEM, "Toll-free number has not been verified"),
    30036: (Disposition.RETRY, "Validity period expired"),
    63003: (Disposition.FAIL_OVER, "Channel could not find the To address"),
    63016: (Disposition.RESEND_AS_TEMPLATE, "Outside the WhatsApp messaging window"),
    63024: (Disposition.FAIL_OVER, "Invalid message recipient"),
}

# Recipient, content and reachability problems: this provider will never take the message as it is.
_REJECTING = {Disposition.REJECT_RECIPIENT, Disposition.FAIL_OVER, Disposition.RESEND_AS_TEMPLATE}


# What an error code says about the address itself (item 4 of issue #9): an invalid or unreachable number
# is a hard bounce, a handset that is off or unknown to the carrier for now a soft one, STOP an opt-out.
_HARD_BOUNCES = {21211, 21614, 30005, 30006, 63024}
_SOFT_BOUNCES = {30003}
_OPT_OUTS = {21610}


def outcome_for_code(code: int | str | None, detail: str = "") -> ProviderOutcome | None:
    """The typed outcome a Twilio error code means for the recipient's address, or None."""
    try:
        number = int(code) if code is not None else None
    except ValueError:
        return None
    said = detail or (ERROR_CODES[number][1] if number in ERROR_CODES else "")
    if number in _HARD_BOUNCES:
        return ProviderOutcome(OutcomeKind.BOUNCED, Severity.HARD, code=str(number), detail=said)
    if number in _SOFT_BOUNCES:
        return ProviderOutcome(OutcomeKind.BOUNCED, Severity.SOFT, code=str(number), detail=said)
    if number in _OPT_OUTS:
        return ProviderOutcome(OutcomeKind.OPTED_OUT, code=str(number), detail=said)
    return None


def disposition(code: int | str | None) -> Disposition | None:
    """The documented meaning of a Twilio error code, or None for codes the table does not know."""
    try:
        number = int(code) if code is not None else None
    except ValueError:
        return None
    entry = ERROR_CODES.get(number) if number is not None else None
    return entry[0] if entry else None


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None, response.reason_phrase
    if not isinstance(body, dict):
        return None, response.reason_phrase
    code = body.get("code")
    return (str(code) if code is not None else None), str(body.get("message") or response.reason_phrase)


def retry_after_seconds(value: str | None, now: dt.datetime) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def error_for_response(response: httpx.Response, *, provider: str, now: dt.datetime) -> DeliveryError:
    """Classify a non-2xx answer to a create request."""
    code, text = _error_body(response)
    status = response.status_code
    message = f"Twilio answered HTTP {status}" + (f" (code {code})" if code else "") + f": {text}"
    retry_after = retry_after_seconds(response.headers.get("Retry-After"), now)
    if status == 429 or (status == 503 and retry_after is not None):
        return RateLimited(message, retry_after=retry_after, provider=provider, code=code or str(status))
    if status >= 500:
        return ProviderFailure(message, provider=provider, code=code or str(status))
    if disposition(code) in _REJECTING:
        return MessageRejected(message, provider=provider, code=code, outcome=outcome_for_code(code, text))
    # Credentials, account, sender configuration, and codes we do not know: a person must look at it,
    # and the recipient must not be blamed (no suppression, no channel failover on a guess).
    return ProviderFailure(message, provider=provider, code=code or str(status))


# Failures before the request left this host: nothing was submitted, another attempt is safe.
_NOT_SENT: tuple[type[httpx.HTTPError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.LocalProtocolError,
    httpx.UnsupportedProtocol,
    httpx.ProxyError,
)


def error_for_transport(exc: httpx.HTTPError, *, provider: str) -> DeliveryError:
    """Classify a transport failure by whether the request may already have reached Twilio."""
    if isinstance(exc, _NOT_SENT):
        return ProviderFailure(f"Twilio not reached: {exc!r}", provider=provider)
    # Read/write timeouts, resets, a peer that closed without answering, an unreadable answer:
    # the message may have been accepted, so it must be reconciled, never blindly resent.
    return OutcomeUnknown(f"Twilio outcome unknown: {exc!r}", provider=provider)
