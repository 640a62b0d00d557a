"""No sequence of ledger transitions lowers a row's settled rank or sends one message twice on one channel."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from herald.delivery import ledger
from herald.delivery.failover import Outcome, RetryPolicy, after_attempt
from herald.delivery.ledger import Change, LedgerRow, Status

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
POLICY = RetryPolicy(max_retries=2)
ACTIONS = ["claim", "expire_and_claim", "attempt", "result", "reconcile", "receipt", "stale_result"]
# The attempt-level ranks receipts respect (forward only), as ledger.ATTEMPT_RANK.
RANK = ledger.ATTEMPT_RANK


@dataclass
class Attempt:
    channel: str
    accepted: bool  # the provider's truth: it took the message
    status: str = "submitting"


@dataclass
class Model:
    row: LedgerRow
    attempts: dict[int, Attempt] = field(default_factory=dict)
    tokens: list[int] = field(default_factory=list)  # every token any worker ever held (stale ones too)

    def apply(self, change: Change | None) -> bool:
        if change is None:
            return False
        self.row = change.applied_to(self.row)
        return True

    def current(self) -> Attempt | None:
        return self.attempts.get(self.row.current_attempt_id or 0)


def settled_key(row: LedgerRow) -> tuple[int, int]:
    """Progress along the plan: channel position, then the rank of a settled status (sent, failed, delivered).
    A worker's own claim/retry moves below `sent` are bookkeeping of one claim, not progress."""
    return row.plan_index, ledger.rank(row.status) if row.status in ledger.SETTLED else 0


def _result_for(attempt: Attempt, choice: int) -> Outcome:
    # A provider that accepted answers "sent", or nothing in time; one that did not refuses or fails.
    if attempt.accepted:
        return ("sent", "unknown")[choice % 2]
    return ("rejected", "failure", "rate_limited", "unknown")[choice % 4]


def _step(model: Model, action: str, data: st.DataObject) -> None:
    row = model.row
    if action in ("claim", "expire_and_claim"):
        if model.apply(ledger.claim_row(row, lease_expired=action == "expire_and_claim")):
            model.tokens.append(model.row.lease_token)
        return
    token = data.draw(st.sampled_from(model.tokens)) if model.tokens else 0
    if action == "stale_result":
        # A worker whose claim was taken over reports late: fencing must make it change nothing.
        stale = [t for t in model.tokens if t != row.lease_token] or [-1]
        decision = after_attempt("sent", plan_index=row.plan_index, channel_count=len(row.channels), retries=0,
                                 now=NOW, policy=POLICY, rng=random.Random(0))  # fmt: skip
        assert ledger.outcome(row, data.draw(st.sampled_from(stale)), decision, detail=None, now=NOW) is None
        return
    if action == "attempt":
        index = data.draw(st.integers(row.plan_index, len(row.channels) - 1))
        current = model.current()
        attempt_id = len(model.attempts) + 1
        change = ledger.attempt(
            row, token, attempt_id=attempt_id, plan_index=index,
            current_attempt_status=current.status if current else None,
        )  # fmt: skip
        if model.apply(change):
            model.attempts[attempt_id] = Attempt(row.channels[index], accepted=data.draw(st.booleans()))
        return
    current = model.current()
    if action == "result" and current is not None and current.status == "submitting":
        outcome = _result_for(current, data.draw(st.integers(0, 3)))
        decision = after_attempt(outcome, plan_index=row.plan_index, channel_count=len(row.channels),
                                 retries=row.retries, now=NOW, policy=POLICY, rng=random.Random(0))  # fmt: skip
        if model.apply(ledger.outcome(row, token, decision, detail=outcome, now=NOW)):
            current.status = {"sent": "sent", "unknown": "unknown", "rejected": "rejected"}.get(outcome, "retry")
        return
    if action == "reconcile" and current is not None and current.status in ledger.OPEN_ATTEMPT:
        # The look-up tells the truth (that is its job); it may also not know yet.
        truthful = ("found", "dead") if current.accepted else ("absent", "never_accepted")
        verdict = data.draw(st.sampled_from([*truthful, "pending"]))
        change = ledger.reconcile(row, token, verdict, now=NOW, retry_at=NOW, may_resubmit=data.draw(st.booleans()),
                                  note=f"reconciled:{verdict}")  # fmt: skip
        if model.apply(change):
            assert change is not None
            current.status = {Status.SENT: "sent", Status.RETRY_WAIT: "retry"}.get(change.status, current.status)
            current.status = "failed" if verdict == "dead" else current.status
        return
    if action == "receipt":
        accepted = [i for i, a in model.attempts.items() if a.accepted]
        if not accepted:
            return
        attempt_id = data.draw(st.sampled_from(accepted))
        attempt = model.attempts[attempt_id]
        kind = data.draw(st.sampled_from(["sent", "delivered", "failed"]))
        wanted = {"sent": "sent", "delivered": "delivered", "failed": "failed"}[kind]
        if RANK[wanted] <= RANK[attempt.status]:
            return  # the attempt itself only moves forward; an older receipt changes nothing
        attempt.status = wanted
        model.apply(ledger.receipt(row, attempt_id, kind, reason=f"receipt:{kind}", now=NOW))  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(
    channels=st.lists(st.sampled_from(["email", "sms", "whatsapp", "voice"]), min_size=1, max_size=3, unique=True),
    actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=40),
    data=st.data(),
)
def test_no_transition_sequence_lowers_rank_or_sends_twice_on_a_channel(
    channels: list[str], actions: list[str], data: st.DataObject
) -> None:
    model = Model(LedgerRow(id=1, status=Status.QUEUED, channels=tuple(channels)))
    for action in actions:
        before = model.row
        _step(model, action, data)
        after = model.row
        assert settled_key(after) >= settled_key(before), (action, before, after)
        if before.status is Status.DELIVERED:
            assert after.status is Status.DELIVERED
        accepted_per_channel: dict[str, int] = {}
        for attempt in model.attempts.values():
            if attempt.accepted:
                accepted_per_channel[attempt.channel] = accepted_per_channel.get(attempt.channel, 0) + 1
        assert all(count <= 1 for count in accepted_per_channel.values()), (action, model.attempts)


def test_a_stale_token_and_an_open_attempt_refuse_a_new_attempt() -> None:
    row = LedgerRow(id=1, status=Status.SENDING, channels=("email", "sms"), lease_token=3, current_attempt_id=7)
    assert ledger.attempt(row, 2, attempt_id=8, plan_index=0, current_attempt_status="retry") is None
    assert ledger.attempt(row, 3, attempt_id=8, plan_index=0, current_attempt_status="unknown") is None
    change = ledger.attempt(row, 3, attempt_id=8, plan_index=1, current_attempt_status="rejected")
    assert change is not None and change.values == {"current_attempt_id": 8, "plan_index": 1, "retries": 0}
