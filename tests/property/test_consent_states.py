"""The materialised consent state agrees with consent/policy.py after any history of consent writes.

Hypothesis draws events (any channel, purpose, kind, explicitness, out-of-order instants and ties),
merges, unmerges, imports and import undos; afterwards every person's `consent_states` rows are what
`policy.consent_state` folds from their events, and the segment condition "allowed on channel ×
purpose" selects exactly the active people `policy.can_contact` allows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.consent.ledger import event_row, load_events, record_events
from herald.consent.policy import CHANNELS, KINDS, PURPOSES, ConsentEvent, can_contact, consent_state, current_states
from herald.contacts import importing, service, undo
from herald.core.actor import CLI
from herald.core.clock import FrozenClock
from herald.core.errors import HeraldError
from herald.db import migrate
from herald.segments.audience import audience_select, parse_definition
from tests.helpers import in_unit

_run = itertools.count()
PEOPLE = 3
CHANNELS_DRAWN = ("email", "sms")  # two are enough to show channels do not leak into each other

event_op = st.tuples(
    st.just("event"),
    st.integers(0, PEOPLE - 1),
    st.sampled_from(CHANNELS_DRAWN),
    st.sampled_from((*PURPOSES, "all")),
    st.sampled_from(KINDS),
    st.booleans(),
    st.integers(-3, 3),  # minutes from the clock: out of order, and ties
)
other_op = st.tuples(
    st.sampled_from(("merge", "unmerge", "import", "undo_import")),
    st.integers(0, PEOPLE - 1),
    st.integers(0, PEOPLE - 1),
    st.sampled_from(("subscribed", "unsubscribed")),
)


def _states(conn: sa.Connection) -> set[tuple[int, str, str, str]]:
    rows = conn.execute(sa.text("SELECT person_id, channel, purpose, state FROM consent_states"))
    return {(int(p), c, pu, s) for p, c, pu, s in rows}


def _expected(conn: sa.Connection) -> set[tuple[int, str, str, str]]:
    ids = list(conn.scalars(sa.text("SELECT id FROM people")))
    out = set()
    for pid, events in load_events(conn, ids).items():
        for channel in CHANNELS:
            for purpose in PURPOSES:
                state = consent_state(events, channel, purpose)[0]
                if state != "unknown":
                    out.add((pid, channel, purpose, state))
    return out


def _apply(
    engine: sa.Engine,
    clock: FrozenClock,
    tmp_path: Path,
    ids: list[int],
    op: tuple[Any, ...],
    log: dict[str, list[int]],
) -> None:
    clock.advance(dt.timedelta(minutes=10))
    kind = op[0]
    if kind == "event":
        _, who, channel, purpose, what, explicit, minutes = op
        at = clock.now() + dt.timedelta(minutes=minutes)
        with engine.begin() as conn:
            record_events(
                conn,
                [
                    event_row(
                        ids[who],
                        channel,
                        purpose,
                        what,
                        source="prop",
                        now=clock.now(),
                        occurred_at=at,
                        explicit=explicit,
                    )
                ],
            )
    elif kind == "merge" and op[1] != op[2]:
        log["merges"].append(in_unit(engine, clock, CLI, service.merge_contacts, ids[op[1]], ids[op[2]], reason="p"))
    elif kind == "unmerge" and log["merges"]:
        in_unit(engine, clock, CLI, service.unmerge_contacts, log["merges"].pop())
    elif kind == "import":
        n = next(_run)
        path = tmp_path / f"imp-{n}.csv"
        path.write_text(
            f"Email Address,First Name,Status,LEID,EUID,MEMBER_RATING\np{op[1]}@example.com,P,{op[3]},1,x,2\n"
            f"new{n}@example.com,N,{op[3]},2,y,2\n",
            encoding="utf-8",
        )
        report = importing.run_import(engine, clock, path, fmt="mailchimp")
        assert report.batch_id is not None
        log["batches"].append(report.batch_id)
    elif kind == "undo_import" and log["batches"]:
        in_unit(engine, clock, CLI, undo.undo_import, log["batches"].pop())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.one_of(event_op, event_op, other_op), min_size=1, max_size=12))
def test_states_and_segments_agree_with_the_policy(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, ops: list[tuple[Any, ...]]
) -> None:
    # Examples share the test's database: each starts from whoever holds the three addresses now.
    ids = [
        service.upsert_contact(engine, clock, service.ContactInput(emails=[f"p{i}@example.com"]), default_region="US")[
            0
        ]
        for i in range(PEOPLE)
    ]
    log: dict[str, list[int]] = {"merges": [], "batches": []}
    for op in ops:
        # A refused operation (an undo blocked by a later batch, a merge of a merged person) changes nothing.
        with contextlib.suppress(HeraldError):
            _apply(engine, clock, tmp_path, ids, op, log)
    with engine.connect() as conn:
        assert _states(conn) == _expected(conn), ops
        active = list(conn.scalars(sa.text("SELECT id FROM people WHERE status = 'active'")))
        events = load_events(conn, active)
        for channel in CHANNELS_DRAWN:
            for purpose in PURPOSES:
                for allowed in (True, False):
                    cond = {"type": "consent", "channel": channel, "purpose": purpose, "allowed": allowed}
                    found = set(conn.scalars(audience_select(parse_definition(cond), now=clock.now())))
                    want = {p for p in active if can_contact(events[p], channel, purpose).allowed == allowed}
                    assert found == want, (cond, ops)


def test_the_migration_backfill_rebuilds_the_same_rows(engine: sa.Engine, clock: FrozenClock) -> None:
    """Downgrading past the migration drops the table; upgrading folds the whole ledger back into it."""
    people = [
        service.upsert_contact(engine, clock, service.ContactInput(emails=[f"m{i}@example.com"]), default_region="US")[
            0
        ]
        for i in range(4)
    ]
    history = [
        (0, "email", "marketing", "subscribed", False, 0),
        (0, "email", "all", "unsubscribed", False, 1),
        (0, "email", "marketing", "subscribed", False, 2),
        (1, "sms", "marketing", "subscribed", False, 0),
        (1, "sms", "marketing", "bounced", False, 0),  # a tie: the later id wins
        (2, "email", "marketing", "complained", False, 0),
        (2, "email", "marketing", "subscribed", True, 5),
        (3, "voice", "transactional", "suppressed", False, -5),
        (3, "voice", "all", "subscribed", False, -9),
    ]
    with engine.begin() as conn:
        record_events(
            conn,
            [
                event_row(
                    people[w],
                    c,
                    p,
                    k,
                    source="t",
                    now=clock.now(),
                    explicit=e,
                    occurred_at=clock.now() + dt.timedelta(minutes=m),
                )
                for w, c, p, k, e, m in history
            ],
        )
    with engine.connect() as conn:
        before = _states(conn)
        assert before == _expected(conn)
    assert (people[0], "email", "marketing", "unsubscribed") in before
    assert (people[2], "email", "marketing", "subscribed") in before
    parent = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_revision("0011").down_revision
    assert isinstance(parent, str)
    migrate.downgrade(engine, parent)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        assert _states(conn) == before


pure_event = st.builds(
    lambda channel, purpose, kind, minute, explicit: ConsentEvent(
        channel, purpose, kind, dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minute), explicit
    ),
    st.sampled_from(CHANNELS),
    st.sampled_from((*PURPOSES, "all")),
    st.sampled_from(KINDS),
    st.integers(0, 5),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(pure_event, max_size=12))
def test_the_one_pass_fold_is_the_policy_fold(events: list[ConsentEvent]) -> None:
    """current_states (what the table stores) equals consent_state for every channel × purpose."""
    states = current_states(events)
    for channel in CHANNELS:
        for purpose in PURPOSES:
            assert states.get((channel, purpose), "unknown") == consent_state(events, channel, purpose)[0]
