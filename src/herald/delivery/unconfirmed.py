"""An operator's re-send of a sent_unconfirmed message: queued again, its attempt re-submitted as it was."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from herald.core.errors import ConflictError, NotFoundError
from herald.db.delivery_tables import message_attempts, messages
from herald.db.unit_of_work import UnitOfWork
from herald.delivery import ledger


class NotUnconfirmedError(ConflictError):
    code = "not_unconfirmed"


def resend_message(uow: UnitOfWork, message_id: int) -> dict[str, Any]:
    """Queue a `sent_unconfirmed` message again. The worker re-submits its last attempt — the same reference,
    so the same Message-ID — counted in the attempt's `resubmissions`; audited as `message.resend`.

    Only that status: a message that was sent, failed or is still on its way is refused (409), so a double
    click or a stale page cannot queue a second re-send.
    """
    row = ledger.get_message(uow.conn, message_id)
    if row is None:
        raise NotFoundError(f"No message with id {message_id}.", id=message_id)
    change = ledger.resend(ledger.LedgerRow.of(row), uow.now)
    current = sa.select(message_attempts).where(message_attempts.c.id == row["current_attempt_id"])
    attempt = uow.conn.execute(current).mappings().first()
    if change is None or attempt is None:
        raise NotUnconfirmedError(
            f"Message {message_id} is {row['status']}: only a sent_unconfirmed message can be re-sent.",
            id=message_id,
            status=row["status"],
        )
    moved = uow.conn.execute(
        sa.update(messages)
        .where(messages.c.id == message_id, messages.c.status == ledger.Status.SENT_UNCONFIRMED)
        .values(
            {
                **change.row_values(),
                "status_rank": ledger.rank(change.status),
                "lease_until": None,
                "sent_at": None,
                "updated_at": uow.now,
            }
        )
    )
    if moved.rowcount != 1:  # another operator's re-send won the race
        raise NotUnconfirmedError(f"Message {message_id} is no longer sent_unconfirmed.", id=message_id)
    uow.conn.execute(
        sa.update(message_attempts)
        .where(message_attempts.c.id == attempt["id"])
        .values(
            status="resend",
            status_rank=ledger.ATTEMPT_RANK["resend"],
            note="resend_requested",
            finished_at=None,
            updated_at=uow.now,
        )
    )
    details = {"reference": attempt["reference"], "was": row["hold_reason"]}
    uow.audit("message.resend", target=f"message {message_id}", target_id=message_id, details=details)
    return {"id": message_id, "status": change.status.value, "reference": attempt["reference"]}
