"""Launch: freeze the audience set-based, then plan it in chunks into the ledger (a durable, resumable job)."""

from __future__ import annotations

from herald.db.unit_of_work import UnitOfWork


def start_launch(uow: UnitOfWork, campaign_id: int) -> int:
    raise NotImplementedError


def start_newcomers(uow: UnitOfWork, campaign_id: int) -> int:
    raise NotImplementedError
