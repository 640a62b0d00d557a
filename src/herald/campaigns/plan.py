"""The one planning code launch and simulation both run: a chunk of the audience → each person's ledger row.

Launch writes the rows `plan_chunk` returns; the simulation reports them. Because both call this function
with the same inputs (audience order, clock, rules), what launch does cannot drift from what was simulated.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from herald.campaigns.model import Campaign
from herald.core.channels import MessageClass
from herald.delivery import bulk_plan
from herald.delivery.ledger import NewMessage
from herald.delivery.planner import (
    Content,
    LocalStart,
    PlannedMessage,
    Recipient,
    Request,
    Rules,
    Skip,
    plan_message,
)
from herald.schedule.caps import SendRecord
from herald.schedule.local_time import rate_offset, spread_offset
from herald.templates.render import TemplateSpec

NOT_ACTIVE = "not_active"  # merged or erased since the audience was frozen: nothing is planned


@dataclass(frozen=True, slots=True)
class Planning:
    """Everything fixed for one run over the audience: the campaign, its pinned template, the rules."""

    campaign: Campaign
    template: TemplateSpec
    rules: Rules
    content: Content
    start: dt.datetime  # "now" and send-rate schedules count from here (the launch instant)

    @classmethod
    def of(cls, campaign: Campaign, template: TemplateSpec, rules: Rules, start: dt.datetime) -> Planning:
        return cls(campaign, template, rules, Content(template=template, check_only=True), start)

    @property
    def cap_window(self) -> dt.timedelta | None:
        return max((rule.window for rule in self.rules.caps), default=None)


@dataclass(frozen=True, slots=True)
class PersonPlan:
    person_id: int
    ordinal: int  # the person's place in the audience (by id): send-rate pacing counts it
    recipient: Recipient | None  # None: no longer an active person
    planned: PlannedMessage | Skip | None
    row: NewMessage | None  # what launch writes (None: nothing)


def request_for(planning: Planning, person_id: int, ordinal: int, now: dt.datetime) -> Request:
    """The planner request: the schedule's start for this person (spread and pacing included)."""
    campaign = planning.campaign
    schedule = campaign.schedule
    offset = spread_offset(person_id, schedule.spread_minutes) + rate_offset(ordinal, campaign.send_rate)
    message_class = MessageClass(campaign.message_class)
    if schedule.kind == "local_time" and schedule.date is not None and schedule.time is not None:
        wall = dt.datetime.combine(schedule.date, schedule.time)
        return Request(message_class, campaign.channels, now, local_start=LocalStart(wall, offset))
    base = schedule.at if schedule.kind == "at" and schedule.at is not None else planning.start
    not_before = base + offset if (schedule.kind == "at" or offset) else None
    return Request(message_class, campaign.channels, now, not_before=not_before)


def planning_instant(now: dt.datetime) -> dt.datetime:
    """The instant a chunk is planned as of: `now` to the whole minute, so every chunk of a launch planned within
    one minute shares its quiet-hours answers (the worker checks quiet hours again when it claims a row)."""
    return now.replace(second=0, microsecond=0)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while one chunk is planned (and written).

    A chunk of 2,000 people builds ~100,000 short-lived objects, nearly all freed by reference counting; with
    the default threshold the collector ran dozens of times per chunk, each run walking the survivors (about
    a fifth of a launch's CPU). Cycles made meanwhile are collected once the chunk is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def plan_chunk(
    conn: sa.Connection,
    planning: Planning,
    people: Sequence[tuple[int, int]],
    now: dt.datetime,
    *,
    rows: bool = True,
) -> list[PersonPlan]:
    """Plan (ordinal, person id) pairs: a fixed handful of reads for the whole chunk, then the pure planner.
    `rows=False` (the simulation) skips building the ledger rows launch would write from each plan."""
    now = planning_instant(now)
    ids = [pid for _, pid in people]
    recipients = bulk_plan.load_recipients(conn, ids)
    recent: Mapping[int, Sequence[SendRecord]] = (
        bulk_plan.recent_sends(conn, ids, now, window=planning.cap_window) if planning.rules.caps else {}
    )
    return [
        plan_person(planning, ordinal, pid, recipients.get(pid), recent.get(pid, ()), now, row=rows)
        for ordinal, pid in people
    ]


def plan_person(
    planning: Planning,
    ordinal: int,
    person_id: int,
    recipient: Recipient | None,
    recent: Sequence[SendRecord],
    now: dt.datetime,
    *,
    row: bool = True,
) -> PersonPlan:
    if recipient is None:
        return PersonPlan(person_id, ordinal, None, None, None)
    request = request_for(planning, person_id, ordinal, now)
    planned = plan_message(request, recipient, planning.content, planning.rules, recent)
    written = _row(planning, recipient, planned, now) if row else None
    return PersonPlan(person_id, ordinal, recipient, planned, written)


def _row(planning: Planning, recipient: Recipient, planned: PlannedMessage | Skip, now: dt.datetime) -> NewMessage:
    campaign = planning.campaign
    # Rendered by the worker at claim time, from the pinned version and the plan's variables.
    return bulk_plan.ledger_row(
        planned,
        person_id=recipient.person_id,
        message_key=campaign.message_key,
        message_class=campaign.message_class,
        channels=campaign.channels,
        now=now,
        render_at_claim=True,
        template_id=planning.template.id,
        template_version=planning.template.version,
        campaign_id=campaign.id,
    )
