"""Pause, resume, cancel, retry failed: set-based moves of a campaign's ledger rows, audited, never re-sending.

Each control locks the campaign row first, so it serialises with the launch job's chunks: a chunk planned
after a pause is never written (the job stops at the next chunk) and one planned before it is paused too.
"""

from __future__ import annotations

from herald.campaigns import launch, store
from herald.campaigns.model import FINAL, CampaignStateError, CampaignStatus
from herald.db.unit_of_work import UnitOfWork
from herald.delivery import campaign_rows


def pause(uow: UnitOfWork, campaign_id: int) -> int:
    row = store.load_row(uow.conn, campaign_id, lock=True)
    if row["status"] not in (CampaignStatus.LAUNCHING, CampaignStatus.RUNNING):
        raise CampaignStateError(f"Campaign {campaign_id} is {row['status']}; only a launched campaign can pause.")
    changed = campaign_rows.pause_rows(uow.conn, campaign_id, uow.now)
    store.set_status(uow.conn, campaign_id, CampaignStatus.PAUSED, uow.now)
    uow.audit("campaign.paused", target="campaign", target_id=campaign_id, details={"rows": changed})
    return changed


def resume(uow: UnitOfWork, campaign_id: int) -> int:
    row = store.load_row(uow.conn, campaign_id, lock=True)
    if row["status"] != CampaignStatus.PAUSED:
        raise CampaignStateError(f"Campaign {campaign_id} is {row['status']}; only a paused campaign resumes.")
    changed = campaign_rows.resume_rows(uow.conn, campaign_id, uow.now)
    details: dict[str, int] = {"rows": changed}
    if launch.planning_left(uow.conn, row):
        # The launch job stopped at the pause: plan the rest (it carries on after its cursor).
        store.set_status(uow.conn, campaign_id, CampaignStatus.LAUNCHING, uow.now)
        job_id = launch.continue_planning(uow, campaign_id)
        store.update(uow.conn, campaign_id, {"job_id": job_id}, uow.now)
        details["job_id"] = job_id
    else:
        store.set_status(uow.conn, campaign_id, CampaignStatus.RUNNING, uow.now)
    uow.audit("campaign.resumed", target="campaign", target_id=campaign_id, details=details)
    return changed


def cancel(uow: UnitOfWork, campaign_id: int) -> int:
    row = store.load_row(uow.conn, campaign_id, lock=True)
    if row["status"] in FINAL:
        raise CampaignStateError(f"Campaign {campaign_id} is already {row['status']}.")
    changed = campaign_rows.cancel_rows(uow.conn, campaign_id, uow.now)
    store.set_status(uow.conn, campaign_id, CampaignStatus.CANCELLED, uow.now, finished_at=uow.now)
    uow.audit("campaign.cancelled", target="campaign", target_id=campaign_id, details={"rows": changed})
    return changed


def retry_failed(uow: UnitOfWork, campaign_id: int) -> int:
    row = store.load_row(uow.conn, campaign_id, lock=True)
    if row["status"] not in (CampaignStatus.RUNNING, CampaignStatus.FINISHED):
        raise CampaignStateError(f"Campaign {campaign_id} is {row['status']}; retry failed needs a running campaign.")
    changed = campaign_rows.retry_failed_rows(uow.conn, campaign_id, uow.now)
    if changed and row["status"] == CampaignStatus.FINISHED:
        store.set_status(uow.conn, campaign_id, CampaignStatus.RUNNING, uow.now, finished_at=None)
    uow.audit("campaign.retried_failed", target="campaign", target_id=campaign_id, details={"rows": changed})
    return changed
