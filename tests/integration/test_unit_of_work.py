"""A unit of work commits the change and its audit row together, and runs hooks only after commit."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from herald.core.actor import CLI, Actor
from herald.core.clock import FrozenClock
from herald.db.auth_tables import audit_log
from herald.db.unit_of_work import unit_of_work


def _audit_rows(engine: sa.Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).mappings()]


def test_audit_rows_commit_with_the_change_and_carry_the_actor(engine: sa.Engine, clock: FrozenClock) -> None:
    ran: list[str] = []
    with unit_of_work(engine, clock, Actor.api_key(7, "ci", ip="10.0.0.1")) as uow:
        uow.audit("contacts.exported", target="people.csv", details={"rows": 3})
        uow.after_commit(lambda: ran.append("after"))
        assert ran == []  # not before the commit
    assert ran == ["after"]
    (row,) = _audit_rows(engine)
    assert row["action"] == "contacts.exported" and row["actor"] == "api key ci" and row["actor_id"] == 7
    assert row["ip"] == "10.0.0.1" and row["at"] == clock.now() and row["details"] == {"rows": 3}


def test_a_rolled_back_change_leaves_no_audit_row_and_runs_no_hook(engine: sa.Engine, clock: FrozenClock) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), unit_of_work(engine, clock, CLI) as uow:
        uow.audit("contacts.erased", target_id=1)
        uow.after_commit(lambda: ran.append("after"))
        raise RuntimeError("the change failed")
    assert ran == [] and _audit_rows(engine) == []


def test_a_failing_hook_does_not_undo_the_commit(engine: sa.Engine, clock: FrozenClock) -> None:
    def boom() -> None:
        raise ValueError("follow-up failed")

    with unit_of_work(engine, clock, CLI) as uow:
        uow.audit("backup.restored")
        uow.after_commit(boom)
    assert [r["action"] for r in _audit_rows(engine)] == ["backup.restored"]


def test_events_are_appended_in_the_same_transaction(engine: sa.Engine, clock: FrozenClock) -> None:
    from herald.db.event_log import Origin
    from herald.db.event_tables import events

    with pytest.raises(RuntimeError), unit_of_work(engine, clock, CLI) as uow:
        uow.emit("unsubscribed", person_id=1, channel="email")
        raise RuntimeError("rolled back")
    with unit_of_work(engine, clock, CLI) as uow:
        uow.emit("delivered", person_id=2, channel="sms", message_id=9, origin=Origin("campaign", 4), data={"x": 1})
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(events)).mappings()]
    assert len(rows) == 1
    assert rows[0] | {"id": 0} == {
        "id": 0,
        "kind": "delivered",
        "person_id": 2,
        "channel": "sms",
        "message_id": 9,
        "origin_type": "campaign",
        "origin_id": 4,
        "occurred_at": clock.now(),
        "data": {"x": 1},
    }
