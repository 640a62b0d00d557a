"""Which provider answers are bounces: SMTP enhanced codes by stage, Twilio error codes."""

from __future__ import annotations

import pytest

from herald.channels.base import MessageRejected, OutcomeKind, ProviderFailure, Severity
from herald.channels.smtp import classify_reply
from herald.channels.twilio_errors import outcome_for_code


@pytest.mark.parametrize(
    ("code", "text", "stage", "expected"),
    [
        (550, "5.1.1 <x@y>: Recipient address rejected: User unknown", "rcpt", Severity.HARD),
        (550, "5.2.1 Mailbox disabled", "data", Severity.HARD),
        (552, "5.2.2 Mailbox full", "data", Severity.SOFT),
        (452, "4.2.2 Mailbox full, try later", "rcpt", Severity.SOFT),
        (550, "5.7.1 Message refused as spam", "data", None),  # content/policy: not the address
        (550, "Recipient refused", "rcpt", None),  # no enhanced code: no evidence about the address
        (550, "5.1.1 sender unknown", "mail", None),  # our sender, not the recipient
        (451, "4.7.1 Greylisted, please try again in 60 seconds", "rcpt", None),
    ],
)
def test_smtp_replies_are_hard_soft_or_no_bounce(code: int, text: str, stage: str, expected: Severity | None) -> None:
    error = classify_reply(code, text, stage=stage, provider="smtp")
    if expected is None:
        assert error.outcome is None
        return
    assert error.outcome is not None and error.outcome.kind is OutcomeKind.BOUNCED
    assert error.outcome.severity is expected
    assert str(code) in (error.outcome.code or "") and text in error.outcome.detail
    # A permanent refusal ends this channel for the message; a transient one is retried (and counted).
    assert isinstance(error, MessageRejected if code >= 500 else ProviderFailure)


@pytest.mark.parametrize(
    ("code", "kind", "severity"),
    [
        ("21211", OutcomeKind.BOUNCED, Severity.HARD),
        ("30005", OutcomeKind.BOUNCED, Severity.HARD),
        ("30006", OutcomeKind.BOUNCED, Severity.HARD),
        ("30003", OutcomeKind.BOUNCED, Severity.SOFT),
        ("21610", OutcomeKind.OPTED_OUT, None),
    ],
)
def test_twilio_codes_name_their_outcome(code: str, kind: OutcomeKind, severity: Severity | None) -> None:
    outcome = outcome_for_code(code)
    assert outcome is not None and outcome.kind is kind and outcome.severity is severity
    assert outcome.suppresses is (severity is not Severity.SOFT)


@pytest.mark.parametrize("code", ["20003", "30007", "99999", "not-a-code", None])
def test_account_and_unknown_codes_blame_no_recipient(code: str | None) -> None:
    assert outcome_for_code(code) is None
