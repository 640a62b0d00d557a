"""Hold and skip reasons in words: the codes the planner, worker and receipts store, said for an operator."""

from __future__ import annotations

from collections.abc import Callable

# Reason kinds (the part before the first ':') an operator can filter by, with a short label. The order is
# the order of the filter menu: the reasons that hold a message first, then those that skip a channel.
REASON_KINDS: dict[str, str] = {
    "quiet_hours": "Quiet hours",
    "capped_hold": "Frequency cap (waiting)",
    "capped_drop": "Frequency cap (dropped)",
    "missing_variable": "Missing template variable",
    "leftover_placeholder": "Placeholder left in content",
    "newline_in_subject": "Line break in subject",
    "output_too_large": "Content too large",
    "render_failed": "Template failed to render",
    "no_consent": "No consent",
    "suppressed": "Address suppressed (bounce, complaint or opt-out)",
    "no_address": "No address for the channel",
    "no_content": "No content for the channel",
    "no_usable_channel": "No usable channel",
    "no_provider": "No provider configured",
    "breaker_open": "Provider paused (circuit breaker)",
    "receipt": "Provider reported a failure",
    "plan_exhausted": "Every channel failed",
    "paused": "Campaign paused",
    "cancelled": "Campaign cancelled",
}

_QUIET: dict[str, str] = {
    "": "Quiet hours at the recipient's place: it goes out when the window opens.",
    "no_common_window": "Quiet hours: no time in the next 8 days is inside the allowed window in every zone the "
    "recipient may be in, so it waits for an operator.",
    "unknown_zone": "Quiet hours: the recipient's time zone is unknown and no fallback zone is set, so it waits "
    "for an operator.",
}

_CONSENT: dict[str, str] = {
    "unsubscribed": "they unsubscribed",
    "bounced": "the address bounced",
    "complained": "they complained",
    "suppressed": "they are suppressed",
    "unknown": "there is no record of their consent",
}


def reason_kind(reason: str) -> str:
    """`missing_variable:contact.first_name` → `missing_variable`: what filters match on."""
    return reason.partition(":")[0]


def _placeholder(rest: str) -> str:
    part, _, snippet = rest.partition(":")
    return f"The rendered {part} still contains a placeholder: {snippet}."


def _render_failed(rest: str) -> str:
    part, _, error = rest.partition(":")
    return f"The template part {part} failed to render ({error})."


def _no_consent(rest: str) -> str:
    why = _CONSENT.get(rest, rest)
    return f"No consent to contact them on this channel: {why}." if why else "No consent on any channel."


_SUPPRESSED: dict[str, str] = {
    "hard_bounce": "an earlier message to this address bounced permanently (the address does not exist or "
    "refuses mail), so it is never tried again",
    "soft_bounces": "earlier messages to this address bounced too many times in a row",
    "complaint": "the recipient marked an earlier message as spam",
    "opted_out": "the recipient opted out at the provider (e.g. replied STOP)",
}


def _suppressed(rest: str) -> str:
    if not rest:  # a hold: every channel in the plan was suppressed
        return "Every channel's address is suppressed (a bounce, a complaint or an opt-out); see each skip."
    return f"Not sent on this channel: {_SUPPRESSED.get(rest, rest)}. The consent history has the evidence."


def _receipt(rest: str) -> str:
    event, _, code = rest.partition(":")
    return f"The provider reported {event}" + (f" (error {code})." if code else ".")


# kind → the sentence, given what follows the kind (the detail after the first ':', often empty).
_SENTENCES: dict[str, Callable[[str], str]] = {
    "quiet_hours": lambda rest: _QUIET.get(rest, f"Quiet hours ({rest})."),
    "capped_hold": lambda _: "Frequency cap reached: it goes out once the cap allows.",
    "capped_drop": lambda _: "Frequency cap reached: this message will not be sent.",
    "missing_variable": lambda rest: f"A template variable has no value and no fallback: {rest}.",
    "leftover_placeholder": _placeholder,
    "newline_in_subject": lambda _: "The rendered e-mail subject contains a line break.",
    "output_too_large": lambda rest: f"The rendered {rest} is too large to send.",
    "render_failed": _render_failed,
    "no_consent": _no_consent,
    "suppressed": _suppressed,
    "no_address": lambda _: "The recipient has no address for this channel.",
    "no_content": lambda _: "The message has no content for this channel.",
    "no_usable_channel": lambda _: "No channel in the plan can be used; each channel's reason is listed under skips.",
    "no_provider": lambda _: "No provider is configured for this channel.",
    "breaker_open": lambda rest: f"The provider {rest} is paused after repeated failures (circuit breaker).",
    "receipt": _receipt,
    "plan_exhausted": lambda rest: f"Every channel in the plan failed or was skipped ({rest}).",
    "paused": lambda _: "Its campaign is paused: it goes out (at its planned time, or now) when the campaign resumes.",
    "cancelled": lambda _: "Its campaign was cancelled: it will not be sent.",
}


def describe_reason(reason: str | None) -> str:
    """One sentence for a stored reason code; an unknown code is shown as it is rather than hidden."""
    if not reason:
        return ""
    kind, _, rest = reason.partition(":")
    sentence = _SENTENCES.get(kind)
    return sentence(rest) if sentence else reason
