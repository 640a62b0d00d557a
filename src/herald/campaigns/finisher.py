"""Set a running campaign `finished` once it is planned and the worker has nothing of it left to move."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from herald.campaigns import store
from herald.campaigns.launch import planning_left
from herald.campaigns.model import CampaignStatus
from herald.core.actor import SYSTEM
from herald.db.engine import read_connection
from herald.db.runtime import Runtime
from herald.db.unit_of_work import unit_of_work
from herald.delivery import campaign_rows

# Why a period: the check is a few indexed reads per running campaign; every worker pass would be wasteful.
EVERY = dt.timedelta(seconds=10)


@dataclass
class _Gate:
    next_at: dt.datetime | None = None


def finish_settled(runtime: Runtime, *, force: bool = False) -> int:
    """At most every EVERY (unless forced): running campaigns with every person planned and no row waiting
    (queued, retry_wait, sending, unknown) become `finished`, audited as `campaign.finished`; returns how many.
    Held rows stay listed: they need an operator, not the worker. "Retry failed" makes a campaign running again."""
    gate = runtime.part(_Gate, _Gate)
    now = runtime.clock.now()
    if not force and gate.next_at is not None and now < gate.next_at:
        return 0
    gate.next_at = now + EVERY
    with read_connection(runtime.engine) as conn:
        candidates = [
            campaign_id
            for campaign_id in store.ids_with_status(conn, CampaignStatus.RUNNING)
            if not campaign_rows.has_waiting(conn, campaign_id)
        ]
    finished = 0
    for campaign_id in candidates:
        with unit_of_work(runtime.engine, runtime.clock, SYSTEM) as uow:
            row = store.load_row(uow.conn, campaign_id, lock=True)  # checked again under the lock
            if row["status"] != CampaignStatus.RUNNING or planning_left(uow.conn, row):
                continue
            if campaign_rows.has_waiting(uow.conn, campaign_id):
                continue
            store.set_status(uow.conn, campaign_id, CampaignStatus.FINISHED, uow.now, finished_at=uow.now)
            uow.audit("campaign.finished", target="campaign", target_id=campaign_id, details={})
            finished += 1
    return finished
