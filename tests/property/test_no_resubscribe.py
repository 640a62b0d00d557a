"""No sequence of imports, upserts, merges, unmerges, undos or non-explicit events resubscribes an opt-out."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from herald.contacts import importing, service, undo
from herald.contacts.store import lookup_keys
from herald.core.actor import CLI
from herald.core.clock import FrozenClock
from herald.core.errors import HeraldError
from tests.helpers import in_unit

OPS = ["upsert", "import", "merge_new", "unmerge", "undo_import", "soft_subscribe", "merge_existing"]
_counter = itertools.count()


def _verdict_allows(engine: sa.Engine, key: str) -> bool:
    with engine.connect() as conn:
        pid = lookup_keys(conn, [("email", key)])[("email", key)]
    return bool(service.contact_detail(engine, pid)["consent"]["email:marketing"]["allowed"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.sampled_from(OPS), min_size=1, max_size=8))
def test_no_operation_sequence_resubscribes(
    engine: sa.Engine, clock: FrozenClock, tmp_path: Path, ops: list[str]
) -> None:
    n = next(_counter)
    email = f"p{n}@example.com"
    pid, _ = service.upsert_contact(
        engine, clock, service.ContactInput(emails=[email], consent={"email": "subscribed"}), default_region="US"
    )
    clock.advance(dt.timedelta(seconds=1))
    in_unit(
        engine,
        clock,
        CLI,
        service.record_consent,
        pid,
        channel="email",
        purpose="marketing",
        kind="unsubscribed",
        explicit=True,
        source="test",
    )
    merges: list[int] = []
    batches: list[int] = []
    others: list[int] = []
    for i, op in enumerate(ops):
        clock.advance(dt.timedelta(seconds=1))
        try:
            if op == "upsert":
                service.upsert_contact(
                    engine,
                    clock,
                    service.ContactInput(emails=[email], consent={"email": "subscribed"}),
                    default_region="US",
                )
            elif op == "import":
                path = tmp_path / f"sub-{n}-{i}.csv"
                path.write_text(
                    f"Email Address,First Name,Status,LEID,EUID,MEMBER_RATING\n{email},P,subscribed,1,x,2\n"
                )
                report = importing.run_import(engine, clock, path, fmt="mailchimp")
                assert report.batch_id is not None
                batches.append(report.batch_id)
            elif op in ("merge_new", "merge_existing"):
                other, _ = service.upsert_contact(
                    engine,
                    clock,
                    service.ContactInput(emails=[f"o{n}-{i}@example.com"], consent={"email": "subscribed"}),
                    default_region="US",
                )
                others.append(other)
                with engine.connect() as conn:
                    current = lookup_keys(conn, [("email", email)])[("email", email)]
                survivor, merged = (other, current) if (op == "merge_new") else (current, other)
                merges.append(in_unit(engine, clock, CLI, service.merge_contacts, survivor, merged, reason="prop"))
            elif op == "unmerge" and merges:
                in_unit(engine, clock, CLI, service.unmerge_contacts, merges.pop())
            elif op == "undo_import" and batches:
                in_unit(engine, clock, CLI, undo.undo_import, batches.pop())
            elif op == "soft_subscribe":
                with engine.connect() as conn:
                    current = lookup_keys(conn, [("email", email)])[("email", email)]
                in_unit(
                    engine,
                    clock,
                    CLI,
                    service.record_consent,
                    current,
                    channel="email",
                    purpose="marketing",
                    kind="subscribed",
                    explicit=False,
                    source="test",
                )
        except HeraldError:
            pass  # a refused operation (e.g. undo blocked by a later batch) changes nothing
        assert not _verdict_allows(engine, email), f"resubscribed after {ops[: i + 1]}"
