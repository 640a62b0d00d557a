"""Launch: freeze the audience set-based, then plan it in chunks into the ledger (a durable, resumable job).

The job's progress lives in the campaign row (`batch`, `planned_through`, `planned_count`), moved in each
chunk's own transaction together with the chunk's ledger rows and the job checkpoint: a worker killed
mid-chunk rolls the chunk back, and the next run starts after the last committed one. The ledger's unique
(person, message key) makes a second row impossible even so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from herald.campaigns import audience, store
from herald.campaigns.model import Campaign, CampaignStateError, CampaignStatus
from herald.campaigns.plan import PersonPlan, Planning, collector_paused, plan_chunk
from herald.core.actor import Actor
from herald.core.errors import NotFoundError
from herald.db.engine import read_connection
from herald.db.runtime import Runtime
from herald.db.unit_of_work import UnitOfWork, unit_of_work
from herald.delivery import bulk_plan
from herald.delivery.ledger import NewMessage
from herald.jobs import store as job_store
from herald.jobs.runner import JobRun
from herald.templates.store import load_template

KIND = "campaign_launch"
CHUNK = 2000  # people per transaction: big enough for set-based reads, small enough for one SQLite write lock


def _actor_json(actor: Actor) -> dict[str, Any]:
    return {"label": actor.label, "id": actor.id, "ip": actor.ip, "kind": actor.kind}


def _queue(uow: UnitOfWork, campaign_id: int, batch: int, start: dt.datetime) -> int:
    payload = {"campaign_id": campaign_id, "batch": batch, "start": start.isoformat(), "actor": _actor_json(uow.actor)}
    job_id = job_store.enqueue(uow.conn, KIND, payload, now=uow.now, dedupe_key=f"campaign:{campaign_id}")
    if job_id is None:
        raise CampaignStateError(f"Campaign {campaign_id} is already being planned; wait for that job to finish.")
    return job_id


def start_launch(uow: UnitOfWork, campaign_id: int) -> int:
    """Draft → launching: freeze the segment's definition and queue the launch job (returns its id)."""
    row = store.load_row(uow.conn, campaign_id, lock=True)
    if row["status"] != CampaignStatus.DRAFT:
        raise CampaignStateError(f"Campaign {campaign_id} is {row['status']}; only a draft can be launched.")
    template = load_template(uow.conn, row["template_id"], row["template_version"])
    definition = audience.segment_definition(uow.conn, row["segment_id"])
    job_id = _queue(uow, campaign_id, 1, uow.now)
    store.set_status(
        uow.conn,
        campaign_id,
        CampaignStatus.LAUNCHING,
        uow.now,
        template_version=template.version,
        audience=dict(definition),
        job_id=job_id,
        batch=1,
        planned_through=0,
        planned_count=0,
        launched_at=uow.now,
    )
    uow.audit(
        "campaign.launched",
        target="campaign",
        target_id=campaign_id,
        details={"job_id": job_id, "template": f"{template.id} v{template.version}", "segment_id": row["segment_id"]},
    )
    return job_id


def start_newcomers(uow: UnitOfWork, campaign_id: int) -> int:
    """A new batch: people in the segment now but not in the campaign's set join it (origin `newcomers`)."""
    row = store.load_row(uow.conn, campaign_id, lock=True)
    if row["status"] not in (CampaignStatus.RUNNING, CampaignStatus.FINISHED):
        raise CampaignStateError(
            f"Campaign {campaign_id} is {row['status']}; newcomers can be added once its launch has been planned."
        )
    batch = int(row["batch"]) + 1
    job_id = _queue(uow, campaign_id, batch, uow.now)
    store.set_status(
        uow.conn, campaign_id, CampaignStatus.LAUNCHING, uow.now, job_id=job_id, batch=batch,
        planned_through=0, planned_count=0, finished_at=None,
    )  # fmt: skip
    uow.audit(
        "campaign.newcomers", target="campaign", target_id=campaign_id, details={"job_id": job_id, "batch": batch}
    )
    return job_id


def continue_planning(uow: UnitOfWork, campaign_id: int) -> int:
    """After a resume: queue the job again to plan the rest of the current batch (it starts after the cursor).
    A resume quick enough to find the stopped job still running leaves it to carry on (it re-reads the status
    before each chunk)."""
    row = store.load_row(uow.conn, campaign_id)
    payload = {"campaign_id": campaign_id, "batch": int(row["batch"]), "start": uow.now.isoformat(),
               "actor": _actor_json(uow.actor)}  # fmt: skip
    job_id = job_store.enqueue(uow.conn, KIND, payload, now=uow.now, dedupe_key=f"campaign:{campaign_id}")
    return job_id if job_id is not None else int(row["job_id"])


def planning_left(conn: sa.Connection, row: Mapping[str, Any]) -> bool:
    """Does the current batch still have people to plan (or to freeze)?"""
    if int(row["batch"]) == 0:
        return False
    if int(row["frozen_batch"]) < int(row["batch"]):
        return True
    return bool(audience.next_people(conn, int(row["id"]), int(row["batch"]), int(row["planned_through"]), 1))


def prepare(conn: sa.Connection, runtime: Runtime, campaign: Campaign, start: dt.datetime) -> Planning:
    """The fixed inputs of a run: the pinned template version and this process's rules."""
    if campaign.template_version is None:
        raise NotFoundError(f"Campaign {campaign.id} has no template version.", id=campaign.id)
    template = load_template(conn, campaign.template_id, campaign.template_version)
    return Planning.of(campaign, template, bulk_plan.plan_rules(runtime), start)


def run_launch(job: JobRun) -> Mapping[str, Any]:
    """The job: freeze this batch (once), then plan chunk after chunk until the batch is done or the campaign
    is paused or cancelled (a resume queues the job again; it carries on after the cursor)."""
    runtime = job.runtime
    payload = job.payload
    campaign_id, batch = int(payload["campaign_id"]), int(payload["batch"])
    actor = Actor(**payload["actor"])
    start = dt.datetime.fromisoformat(payload["start"])
    with unit_of_work(runtime.engine, runtime.clock, actor) as uow:
        row = store.load_row(uow.conn, campaign_id, lock=True)
        if row["status"] != CampaignStatus.LAUNCHING or int(row["batch"]) != batch:
            return {"campaign_id": campaign_id, "stopped": row["status"]}
        total = _freeze_once(uow, row, batch)
        job.checkpoint(uow.conn, int(row["planned_count"]), total)
        # Fixed for the whole run: the pinned template and the rules (their quiet-hours answers are shared).
        planning = prepare(uow.conn, runtime, store.to_campaign(row), start)
    # The next chunk is planned on a second connection while this one's rows are written: the driver waits
    # (the insert, the server's constraint checks, the commit) release the GIL, so planning fills them.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="launch-plan-ahead") as ahead:
        pending: _Ahead | None = None
        while True:
            with unit_of_work(runtime.engine, runtime.clock, actor) as uow:
                row = store.load_row(uow.conn, campaign_id, lock=True)
                if row["status"] != CampaignStatus.LAUNCHING:
                    # Paused or cancelled between chunks: stop here; nothing planned after it can be sent.
                    job.checkpoint(uow.conn, int(row["planned_count"]), total)
                    return {"campaign_id": campaign_id, "planned": int(row["planned_count"]), "stopped": row["status"]}
                ids = audience.next_people(uow.conn, campaign_id, batch, int(row["planned_through"]), CHUNK)
                if not ids:
                    _finish_planning(uow, row, total)
                    job.checkpoint(uow.conn, int(row["planned_count"]), total)
                    return {"campaign_id": campaign_id, "batch": batch, "planned": int(row["planned_count"])}
                people = list(enumerate(ids, start=int(row["planned_count"])))
                with collector_paused():
                    # Planned ahead for exactly these people (the cursor did not move meanwhile), or now.
                    ahead_plans = pending.plans.result() if pending is not None and pending.people == people else None
                    plans = ahead_plans if ahead_plans is not None else plan_chunk(uow.conn, planning, people, uow.now)
                    pending = None
                    following = audience.next_people(uow.conn, campaign_id, batch, ids[-1], CHUNK)
                    if following and _can_plan_ahead(runtime):
                        upcoming = list(enumerate(following, start=people[-1][0] + 1))
                        pending = _Ahead(upcoming, ahead.submit(_plan_ahead, runtime, planning, upcoming))
                    planned = _queue_chunk(uow, planning, people, plans)
                    del plans, ahead_plans
                job.checkpoint(uow.conn, planned, total)


@dataclass(frozen=True, slots=True)
class _Ahead:
    people: list[tuple[int, int]]  # (ordinal, person id) the future plans
    plans: Future[list[PersonPlan]]


def _can_plan_ahead(runtime: Runtime) -> bool:
    # An in-memory SQLite database is one connection: a second one would be another (empty) database.
    url = runtime.engine.url
    return url.get_backend_name() != "sqlite" or url.database not in (None, "", ":memory:")


def _plan_ahead(runtime: Runtime, planning: Planning, people: list[tuple[int, int]]) -> list[PersonPlan]:
    """Plan the next chunk on a read connection of its own (its people's inputs are not what this chunk writes)."""
    with read_connection(runtime.engine) as conn, conn.begin():
        return plan_chunk(conn, planning, people, runtime.clock.now())


def _queue_chunk(uow: UnitOfWork, planning: Planning, people: list[tuple[int, int]], plans: list[PersonPlan]) -> int:
    """Write one chunk's rows and move the cursor in the caller's transaction; returns people planned."""
    rows: list[NewMessage] = [p.row for p in plans if p.row is not None]
    bulk_plan.enqueue_many(uow.conn, rows, uow.now)
    planned = people[-1][0] + 1
    store.update(uow.conn, planning.campaign.id, {"planned_through": people[-1][1], "planned_count": planned}, uow.now)
    return planned


def _freeze_once(uow: UnitOfWork, row: Mapping[str, Any], batch: int) -> int:
    campaign_id = int(row["id"])
    if int(row["frozen_batch"]) >= batch:
        return audience.batch_size(uow.conn, campaign_id, batch)
    if batch == 1:
        definition, origin = row["audience"], audience.LAUNCH
    else:
        definition, origin = audience.segment_definition(uow.conn, int(row["segment_id"])), audience.NEWCOMERS
    size = audience.freeze(uow.conn, campaign_id, definition, batch=batch, origin=origin, now=uow.now)
    store.update(
        uow.conn,
        campaign_id,
        {"frozen_batch": batch, "recipients": audience.total_size(uow.conn, campaign_id)},
        uow.now,
    )
    return size


def _finish_planning(uow: UnitOfWork, row: Mapping[str, Any], total: int) -> None:
    campaign_id = int(row["id"])
    store.set_status(uow.conn, campaign_id, CampaignStatus.RUNNING, uow.now)
    uow.audit(
        "campaign.planned",
        target="campaign",
        target_id=campaign_id,
        details={"batch": int(row["batch"]), "people": total},
    )
