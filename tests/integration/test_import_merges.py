"""Merges an import decides in one chunk are carried out together, in order, and each unmerges on its own."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from herald.db.consent_tables import consent_events
from herald.db.contacts_tables import identifiers, merges, people
from herald.db.event_tables import events
from tests.helpers import cli
from tests.integration.test_vendor_imports import ACCEPTED, FIXTURES


def owner(engine: sa.Engine, kind: str, key: str) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            sa.select(identifiers.c.person_id).where(identifiers.c.kind == kind, identifiers.c.key == key)
        )
    assert pid is not None, f"no {kind} {key}"
    return int(pid)


def test_a_chain_of_merges_in_one_chunk_lands_on_one_person_and_unmerges_step_by_step(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path
) -> None:
    for name, text in (
        ("a.csv", "email,first name,city\nann@x.io,Ann,Oslo\n"),
        ("b.csv", "email,first name,plan\nbob@x.io,Ann,pro\n"),
        ("c.csv", "twitter,first name,team\n@ann3,Ann,red\n"),
    ):
        (tmp_path / name).write_text(text)
        assert cli("contacts", "import", str(tmp_path / name)).exit_code == 0
    ann, bob, handle = (
        owner(engine, "email", "ann@x.io"),
        owner(engine, "email", "bob@x.io"),
        owner(engine, "handle", "twitter:ann3"),
    )
    assert ann < bob < handle
    # Row 2 merges the handle's person into Bob's; row 3 then merges Bob's (holding the handle) into Ann's.
    (tmp_path / "d.csv").write_text("email,twitter,first name\nbob@x.io,@ann3,Ann\nann@x.io,@ann3,Ann\n")
    linking = cli("contacts", "import", str(tmp_path / "d.csv"))
    assert "merged=2" in linking.output, linking.output
    assert {owner(engine, "email", "ann@x.io"), owner(engine, "email", "bob@x.io")} == {ann}
    assert owner(engine, "handle", "twitter:ann3") == ann
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(people.c.id, people.c.status)).all())
        attributes = conn.scalar(sa.select(people.c.attributes).where(people.c.id == ann))
        done = conn.execute(
            sa.select(merges.c.id, merges.c.survivor_id, merges.c.merged_id).order_by(merges.c.id)
        ).all()
        logged = conn.execute(
            sa.select(events.c.person_id, events.c.data).where(events.c.kind == "contacts_merged").order_by(events.c.id)
        ).all()
    assert statuses == {ann: "active", bob: "merged", handle: "merged"}
    assert attributes == {"city": "Oslo", "plan": "pro", "team": "red"}
    assert [(s, m) for _, s, m in done] == [(bob, handle), (ann, bob)]
    assert [(pid, data["merged_id"], data["merge_id"]) for pid, data in logged] == [
        (bob, handle, done[0].id),
        (ann, bob, done[1].id),
    ]

    # The later merge first: Bob comes back with what he held then, the handle included.
    assert cli("contacts", "unmerge", str(done[1].id)).exit_code == 0
    assert owner(engine, "email", "bob@x.io") == bob and owner(engine, "handle", "twitter:ann3") == bob
    assert owner(engine, "email", "ann@x.io") == ann
    assert cli("contacts", "unmerge", str(done[0].id)).exit_code == 0
    assert owner(engine, "handle", "twitter:ann3") == handle
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(people.c.id, people.c.status)).all())
        restored = dict(conn.execute(sa.select(people.c.id, people.c.attributes)).all())
    assert statuses == {ann: "active", bob: "active", handle: "active"}
    assert restored == {ann: {"city": "Oslo"}, bob: {"plan": "pro"}, handle: {"team": "red"}}


def test_every_subscribe_and_unsubscribe_an_import_records_is_in_the_event_log(
    engine: sa.Engine, cli_env: dict[str, str]
) -> None:
    for name in ACCEPTED:  # every vendor layout, with their subscription columns
        assert cli("contacts", "import", str(FIXTURES / name)).exit_code == 0
    logged = ("subscribed", "unsubscribed")
    with engine.connect() as conn:
        recorded = sorted(
            conn.execute(
                sa.select(consent_events.c.person_id, consent_events.c.kind, consent_events.c.channel).where(
                    consent_events.c.kind.in_(logged)
                )
            ).all()
        )
        reported = sorted(
            conn.execute(
                sa.select(events.c.person_id, events.c.kind, events.c.channel).where(events.c.kind.in_(logged))
            ).all()
        )
        sources = {data["source"] for data in conn.scalars(sa.select(events.c.data).where(events.c.kind.in_(logged)))}
    assert len(recorded) > 1, "the fixtures should subscribe and unsubscribe someone"
    assert {kind for _, kind, _ in recorded} == set(logged)
    assert reported == recorded
    assert all(source.startswith("import:") for source in sources)
