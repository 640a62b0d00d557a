"""An operator's "retry failed" (campaigns) never gives a second accepted send: proved on the ledger's own model."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from herald.delivery import ledger
from herald.delivery.ledger import LedgerRow, Status
from tests.property.test_ledger_transitions import ACTIONS, NOW, Attempt, Model, _step

# Attempt statuses the provider's truth allows: an accepted attempt can end in any of the first set (a bounce
# after acceptance ends `failed`); one that took nothing ends refused or retried, or is still open.
ACCEPTED_STATUSES = ("submitting", "unknown", "sent", "delivered", "failed")
REFUSED_STATUSES = ("submitting", "unknown", "retry", "rejected")
_FIELDS = {f.name for f in dataclasses.fields(Attempt)}


def _attempt(channel: str, accepted: bool, status: str) -> Attempt:
    extra = {"marked": accepted, "copies": int(accepted)}  # the wire-mark model's fields, where it has them
    return Attempt(
        channel=channel, accepted=accepted, status=status, **{k: v for k, v in extra.items() if k in _FIELDS}
    )


@settings(max_examples=400, deadline=None)
@given(
    channels=st.lists(st.sampled_from(["email", "sms", "whatsapp", "voice"]), min_size=1, max_size=3, unique=True),
    history=st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.integers(0, 4)), max_size=4),
    actions=st.lists(st.sampled_from([*ACTIONS, "retry_failed", "retry_failed"]), min_size=1, max_size=40),
    data=st.data(),
)
def test_retry_failed_never_gives_a_second_accepted_send(
    channels: list[str], history: list[tuple[int, bool, int]], actions: list[str], data: st.DataObject
) -> None:
    """Start from a failed row with any attempt history the provider's truth allows; retry failed, claim, attempt,
    then anything (retry failed included). A retry never applies to a row any provider accepted, and no channel
    ever holds two live accepted copies."""
    attempts: dict[int, Attempt] = {}
    accepted_on: set[str] = set()
    for number, (index, accepted, choice) in enumerate(history, start=1):
        channel = channels[index % len(channels)]
        accepted = accepted and channel not in accepted_on  # a history with two copies is not a starting point
        accepted_on.update({channel} if accepted else ())
        statuses = ACCEPTED_STATUSES if accepted else REFUSED_STATUSES
        attempts[number] = _attempt(channel, accepted, statuses[choice % len(statuses)])
    row = LedgerRow(
        id=1, status=Status.FAILED, channels=tuple(channels), plan_index=len(channels) - 1,
        current_attempt_id=max(attempts, default=None),
    )  # fmt: skip
    model = Model(row, attempts)
    for action in ["retry_failed", "claim", "attempt", *actions]:
        if action == "retry_failed":
            accepted_before = [a for a in model.attempts.values() if a.accepted]
            statuses = [a.status for a in model.attempts.values()]
            if model.apply(ledger.retry_failed(model.row, statuses, NOW)):
                assert model.row.status is Status.QUEUED and model.row.plan_index == 0
                assert not accepted_before, ("retried a row a provider had accepted", accepted_before)
            continue
        _step(model, action, data)
        accepted_per_channel: dict[str, int] = {}
        for attempt in model.attempts.values():
            if attempt.accepted and attempt.status != "failed":
                accepted_per_channel[attempt.channel] = accepted_per_channel.get(attempt.channel, 0) + 1
        assert all(n <= 1 for n in accepted_per_channel.values()), (action, model.attempts)


@settings(max_examples=300, deadline=None)
@given(
    statuses=st.lists(st.sampled_from(sorted(ledger.ATTEMPT_RANK)), max_size=4),
    status=st.sampled_from(list(Status)),
)
def test_retry_failed_takes_only_failed_rows_whose_attempts_were_never_accepted(
    statuses: list[str], status: Status
) -> None:
    row = LedgerRow(id=1, status=status, channels=("email", "sms"), plan_index=1, retries=2)
    change = ledger.retry_failed(row, statuses, NOW)
    never_accepted = all(s in ("retry", "rejected") for s in statuses)
    assert (change is not None) == (status is Status.FAILED and never_accepted)
    if change is not None:
        assert change.status is Status.QUEUED
        assert change.applied_to(row).plan_index == 0 and change.values["available_at"] == NOW
