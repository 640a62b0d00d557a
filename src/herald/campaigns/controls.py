"""Pause, resume, cancel, retry failed: set-based moves of a campaign's ledger rows, audited, never re-sending."""

from __future__ import annotations

from herald.db.unit_of_work import UnitOfWork


def pause(uow: UnitOfWork, campaign_id: int) -> int:
    raise NotImplementedError


def resume(uow: UnitOfWork, campaign_id: int) -> int:
    raise NotImplementedError


def cancel(uow: UnitOfWork, campaign_id: int) -> int:
    raise NotImplementedError


def retry_failed(uow: UnitOfWork, campaign_id: int) -> int:
    raise NotImplementedError
