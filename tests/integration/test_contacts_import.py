"""Contact imports end to end through the CLI on SQLite and PostgreSQL: identity, rejects, undo, export."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from herald.db.consent_tables import consent_events
from herald.db.contacts_tables import identifiers, import_batches, merge_suggestions, people, source_records
from tests.helpers import cli


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def count(engine: sa.Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where)) or 0)


def active_people(engine: sa.Engine) -> int:
    return count(engine, people, people.c.status == "active")


def batch_id_of(output: str) -> int:
    match = re.search(r"batch (\d+)", output)
    assert match, output
    return int(match.group(1))


def person_of(engine: sa.Engine, kind: str, key: str) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            sa.select(identifiers.c.person_id).where(identifiers.c.kind == kind, identifiers.c.key == key)
        )
    assert pid is not None, f"no {kind} {key}"
    return int(pid)


MESSY = """Email,First Name,Last Name,Phone,Country,Notes
John.Smith@gmail.com,John,Smith,(212) 555-0142,US,"first line
second line"
johnsmith+news@googlemail.com,Johnny,Smith,,US,dup of row 2
mary@example.com,Mary,Jones,020 7946 0958,GB,
bob@example.com,Bob,Jones,020 7946 0958,GB,household: shares Mary's landline
not-an-email,Nobody,Here,,US,
,No,Identifier,,,
carol@example.com,Carol,Diaz,12345,US,bad phone
=HYPERLINK("http://evil"),Eve,Formula,,US,
dave@example.org,=cmd|' /C calc'!A0,Dave,+49 30 901820,,
"""


def test_messy_file_resolves_people_rejects_bad_rows_and_warns_about_bad_values(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = cli("contacts", "import", str(write(tmp_path / "messy.csv", MESSY)), "--rejects", str(tmp_path / "rej"))
    assert result.exit_code == 0, result.output
    out = result.output
    # Row numbers as a spreadsheet shows them: header is row 1; the multi-line record is one row.
    assert "row 6: invalid_email [email]" in out
    assert "row 7: no_valid_identifier" in out
    # Carol's e-mail is good: she is imported, and her phone "12345" is a warning, not a lost person.
    assert "row 8: warning invalid_phone [phone]: '12345' is not a valid phone number" in out
    assert "row 9: invalid_email [email]" in out
    assert "created=5" in out and "deduplicated=1" in out and "rejected=3" in out and "warned=1" in out
    assert "suggested=1" in out and "rows, encoding utf-8\n" in out
    carol = person_of(engine, "email", "carol@example.com")
    assert count(engine, identifiers, identifiers.c.person_id == carol) == 1
    with engine.connect() as conn:
        raw = conn.scalar(sa.select(source_records.c.raw).where(source_records.c.person_id == carol))
    assert raw["Phone"] == "12345"  # the raw value stays in the source record

    john = person_of(engine, "email", "johnsmith@gmail.com")
    assert person_of(engine, "phone", "+12125550142") == john  # Gmail variants and a national US number
    mary = person_of(engine, "phone", "+442079460958")
    bob = person_of(engine, "email", "bob@example.com")
    assert mary != bob  # a household landline: a suggestion, never a merge
    with engine.connect() as conn:
        pair = conn.execute(sa.select(merge_suggestions.c.person_a_id, merge_suggestions.c.person_b_id)).one()
        assert set(pair) == {mary, bob}
        rows = conn.execute(sa.select(source_records.c.row_number).where(source_records.c.person_id == john)).scalars()
        assert sorted(rows) == [2, 3]
        notes = conn.scalar(sa.select(people.c.attributes).where(people.c.id == john))
    assert notes["Notes"] == "dup of row 2"  # the newer row's non-empty value wins

    rejects = list(csv.DictReader((tmp_path / "rej").glob("*.csv").__next__().open(encoding="utf-8")))
    assert [(r["row"], r["kind"], r["reason"]) for r in rejects] == [
        ("6", "reject", "invalid_email"),
        ("7", "reject", "no_valid_identifier"),
        ("8", "warning", "invalid_phone"),
        ("9", "reject", "invalid_email"),
    ]
    assert rejects[2]["Phone"] == "12345" and rejects[2]["Email"] == "carol@example.com"
    assert rejects[3]["Email"].startswith("'=")  # even the rejects file is safe to open in a spreadsheet


def test_a_row_linking_two_new_people_in_one_file_makes_one_person(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path
) -> None:
    data = "email,first name,phone\na@x.io,Ann,\n,Ann,+1 212 736 5000\na@x.io,Ann,+1 212 736 5000\n"
    result = cli("contacts", "import", str(write(tmp_path / "link.csv", data)))
    assert result.exit_code == 0, result.output
    assert "created=1" in result.output and "deduplicated=2" in result.output
    assert person_of(engine, "email", "a@x.io") == person_of(engine, "phone", "+12127365000")
    assert active_people(engine) == 1 and count(engine, identifiers) == 2


def test_dry_run_reports_and_changes_nothing(engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path) -> None:
    result = cli("contacts", "import", str(write(tmp_path / "m.csv", MESSY)), "--dry-run", "--rejects", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "dry run (nothing changed)" in result.output and "created=5" in result.output
    assert count(engine, people) == 0 and count(engine, import_batches) == 0 and count(engine, identifiers) == 0


def test_cp1252_semicolon_file_with_default_region(engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path) -> None:
    text = (
        "E-Mail;Vorname;Nachname;Telefon\r\n"
        "joerg@beispiel.de;Jörg;Müller;030 901820\r\n"
        "rene@beispiel.de;René;Größe;0171 1234567\r\n"
    )
    path = write(tmp_path / "de.csv", text, encoding="cp1252")
    result = cli("contacts", "import", str(path), "--default-region", "DE")
    assert result.exit_code == 0, result.output
    joerg = person_of(engine, "phone", "+4930901820")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(people.c.last_name).where(people.c.id == joerg)) == "Müller"
    assert person_of(engine, "phone", "+491711234567") == person_of(engine, "email", "rene@beispiel.de")


def test_duplicates_across_files_and_import_undo(engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path) -> None:
    first = cli(
        "contacts",
        "import",
        str(write(tmp_path / "a.csv", "email,first name,company\nann@acme.io,Ann,Acme\nben@acme.io,Ben,Acme\n")),
    )
    second_file = write(
        tmp_path / "b.csv",
        "Email,First Name,Company,Twitter\nANN@ACME.IO,Ann,Acme Corp,@ann\ncid@acme.io,Cid,Acme,\n",
    )
    second = cli("contacts", "import", str(second_file))
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert "created=1" in second.output and "updated=1" in second.output
    ann = person_of(engine, "email", "ann@acme.io")
    assert person_of(engine, "handle", "twitter:ann") == ann
    assert active_people(engine) == 3

    # Undoing the first batch is refused while the second built on its people.
    refused = cli("contacts", "import-undo", str(batch_id_of(first.output)))
    assert refused.exit_code == 1 and "undo them first" in refused.output

    assert cli("contacts", "import-undo", str(batch_id_of(second.output))).exit_code == 0
    assert active_people(engine) == 2
    with engine.connect() as conn:
        assert conn.scalar(sa.select(people.c.company).where(people.c.id == ann)) == "Acme"
    assert count(engine, identifiers, identifiers.c.kind == "handle") == 0
    assert cli("contacts", "import-undo", str(batch_id_of(first.output))).exit_code == 0
    assert count(engine, people) == 0 and count(engine, identifiers) == 0 and count(engine, source_records) == 0


def test_row_linking_two_people_merges_them_and_unmerge_restores(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli("contacts", "import", str(write(tmp_path / "a.csv", "email,first name,city\nzoe@x.io,Zoe,Oslo\n")))
    cli("contacts", "import", str(write(tmp_path / "b.csv", "twitter,first name,plan\n@zoe,Zoë,pro\n")))
    zoe_email, zoe_handle = person_of(engine, "email", "zoe@x.io"), person_of(engine, "handle", "twitter:zoe")
    assert zoe_email != zoe_handle
    linking = cli(
        "contacts",
        "import",
        str(write(tmp_path / "c.csv", "email,twitter,first name\nzoe@x.io,https://x.com/Zoe/,Zoe\n")),
    )
    assert "merged=1" in linking.output, linking.output
    assert person_of(engine, "handle", "twitter:zoe") == zoe_email
    with engine.connect() as conn:
        merged = conn.execute(
            sa.select(people.c.status, people.c.merged_into_id).where(people.c.id == zoe_handle)
        ).one()
        attrs = conn.scalar(sa.select(people.c.attributes).where(people.c.id == zoe_email))
    assert tuple(merged) == ("merged", zoe_email)
    assert attrs == {"city": "Oslo", "plan": "pro"}

    listed = cli("contacts", "show", str(zoe_email))
    assert "twitter:zoe" in listed.output
    with engine.connect() as conn:
        merge_id = conn.execute(sa.text("select id from merges")).scalar_one()
    assert cli("contacts", "unmerge", str(merge_id)).exit_code == 0
    assert person_of(engine, "handle", "twitter:zoe") == zoe_handle
    with engine.connect() as conn:
        restored = conn.execute(sa.select(people.c.status, people.c.attributes).where(people.c.id == zoe_handle)).one()
        survivor_attrs = conn.scalar(sa.select(people.c.attributes).where(people.c.id == zoe_email))
    assert restored[0] == "active" and restored[1] == {"plan": "pro"}
    assert survivor_attrs == {"city": "Oslo"}


def test_operator_merge_and_duplicates_command(engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path) -> None:
    data = (
        "email,first name,last name\n"
        "jon.smyth@acme.io,Jonathan,Smyth\njonathan.smyth@acme.io,Jonathan,Smyth\nx@other.io,Ann,Other\n"
    )
    cli("contacts", "import", str(write(tmp_path / "d.csv", data)))
    out = cli("contacts", "duplicates").output
    a, b = (
        person_of(engine, "email", "jon.smyth@acme.io"),
        person_of(engine, "email", "jonathan.smyth@acme.io"),
    )
    assert re.search(rf"{a}\s+│\s+{b}", out) or re.search(rf"{a}\D+{b}", out), out
    assert "similar names" in out
    merged = cli("contacts", "merge", str(a), str(b), "--reason", "same person")
    assert merged.exit_code == 0 and active_people(engine) == 2
    assert cli("contacts", "merge", str(a), str(b)).exit_code == 1  # already merged: a clear error, no change


def test_mailchimp_unsubscribed_export_never_resubscribed(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path
) -> None:
    header = "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,LEID,EUID,TAGS"
    subscribed = write(
        tmp_path / "subscribed_members_export_1.csv",
        f'{header}\nli@example.com,Li,Wei,2,2024-01-01,1,a,"vip"\n',
    )
    unsub = write(
        tmp_path / "unsubscribed_members_export_1.csv",
        f"{header},UNSUB_TIME,UNSUB_REASON\nli@example.com,Li,Wei,2,2024-01-01,1,a,,2024-05-01,no longer interested\n",
    )
    assert cli("contacts", "import", str(subscribed)).exit_code == 0
    assert cli("contacts", "import", str(unsub)).exit_code == 0
    again = cli("contacts", "import", str(subscribed))
    assert again.exit_code == 0 and "opt_out_kept=1" in again.output
    li = person_of(engine, "email", "li@example.com")
    show = cli("contacts", "show", str(li)).output
    assert "email:marketing: blocked (unsubscribed" in show


def test_erasure_keeps_a_tombstone_and_reimport_stays_suppressed(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path, api: object
) -> None:
    file = write(tmp_path / "e.csv", "email,phone,first name\nerin@example.com,+1 212 736 5000,Erin\n")
    cli("contacts", "import", str(file))
    erin = person_of(engine, "email", "erin@example.com")
    response = api.delete(f"/api/contacts/{erin}")  # type: ignore[attr-defined]
    assert response.status_code == 200 and response.json()["identifiers_tombstoned"] == 2
    with engine.connect() as conn:
        row = conn.execute(sa.select(people).where(people.c.id == erin)).mappings().one()
    assert row["status"] == "erased" and row["first_name"] is None
    assert count(engine, identifiers, identifiers.c.person_id == erin) == 0
    assert count(engine, source_records, source_records.c.person_id == erin) == 0

    again = cli("contacts", "import", str(file))
    assert "suppressed=1" in again.output, again.output
    new = person_of(engine, "email", "erin@example.com")
    assert new != erin
    kinds = {
        (c, k)
        for c, k in sa.create_engine(engine.url)
        .connect()
        .execute(sa.select(consent_events.c.channel, consent_events.c.kind).where(consent_events.c.person_id == new))
    }
    assert {("email", "suppressed"), ("sms", "suppressed")} <= kinds


def test_export_neutralises_formulas_and_reimports_identically(
    engine: sa.Engine,
    cli_env: dict[str, str],
    tmp_path: Path,
    db_kind: str,
    sqlite_template: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cli("contacts", "import", str(write(tmp_path / "m.csv", MESSY)))
    mc = (
        "Email Address,First Name,Last Name,LEID,EUID,MEMBER_RATING,UNSUB_TIME\n"
        "q@example.com,Q,-Minus,1,x,1,2024-01-01\n"
    )
    cli("contacts", "import", str(write(tmp_path / "unsubscribed_members_export_q.csv", mc)))
    out = tmp_path / "export.csv"
    assert cli("contacts", "export", "--out", str(out)).exit_code == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == active_people(engine) == 6
    dave = next(r for r in rows if "dave@example.org" in r["emails"])
    assert dave["first_name"].startswith("'=")  # CSV injection neutralised
    assert next(r for r in rows if r["emails"] == '["q@example.com"]')["last_name"] == "'-Minus"

    sources = tmp_path / "sources.csv"
    assert cli("contacts", "export", "--with-sources", "--out", str(sources)).exit_code == 0
    header = sources.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("person_id,source_file,source_row")

    snapshot = _people_snapshot(engine)
    # Re-import the export into a second, empty database of the same engine: the same people result.
    from tests.conftest import fresh_database_url

    (tmp_path / "second").mkdir()
    for url in fresh_database_url(db_kind, tmp_path / "second", sqlite_template):
        monkeypatch.setenv("HERALD_DATABASE_URL", url)
        result = cli("contacts", "import", str(out))
        assert result.exit_code == 0 and "rejected=0" in result.output, result.output
        other = sa.create_engine(url)
        assert _people_snapshot(other) == snapshot
        other.dispose()


def _people_snapshot(engine: sa.Engine) -> list[tuple[object, ...]]:
    from herald.consent.ledger import consent_summary, load_events

    with engine.connect() as conn:
        rows = conn.execute(sa.select(people).where(people.c.status == "active")).mappings().all()
        ids = [r["id"] for r in rows]
        idents: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
        for pid, kind, key in conn.execute(sa.select(identifiers.c.person_id, identifiers.c.kind, identifiers.c.key)):
            if pid in idents:
                idents[pid].append((kind, key))
        events = load_events(conn, ids)
    out = []
    for r in rows:
        consent = tuple(sorted((k, v.state) for k, v in consent_summary(events[r["id"]]).items()))
        out.append(
            (
                tuple(sorted(idents[r["id"]])),
                r["first_name"],
                r["last_name"],
                r["company"],
                r["country"],
                r["timezone"],
                tuple(sorted((r["attributes"] or {}).items())),
                tuple(r["tags"] or []),
                consent,
            )
        )
    return sorted(out)


def test_parallel_validation_gives_the_same_result(engine: sa.Engine, tmp_path: Path, clock: object) -> None:
    from herald.contacts import importing

    rows = "".join(f"user{i}@example.com,User{i},+1 212 736 {i:04d}\n" for i in range(3000))
    rows += "bad,Bad,\nwarned@example.com,Warned,n/a\n"
    path = write(tmp_path / "p.csv", "email,first name,phone\n" + rows + rows)
    report = importing.run_import(engine, clock, path, workers=2)  # type: ignore[arg-type]
    assert report.counts["created"] == 3001 and report.counts["deduplicated"] == 3001
    assert [r.row_number for r in report.rejects] == [3002, 6004]
    assert [(w.row_number, w.reason, w.raw["phone"]) for w in report.warnings] == [
        (3003, "invalid_phone", "n/a"),
        (6005, "invalid_phone", "n/a"),
    ]
    assert report.counts["warned"] == 2
    assert count(engine, source_records) == 6002


def test_names_damaged_by_a_cp1252_export_still_agree_and_the_guessed_encoding_is_reported(
    engine: sa.Engine, cli_env: dict[str, str], tmp_path: Path, api: Any
) -> None:
    crm = "email,first name,last name,phone\nlukasz@firma.pl,Łukasz,Wiśniewski,+48 22 123 45 67\n"
    crm += "anna@firma.pl,Anna,Kowalska,+48 22 765 43 21\n"
    assert cli("contacts", "import", str(write(tmp_path / "crm.csv", crm))).exit_code == 0
    # Constant Contact wrote cp1252, which has no Ł or ś: they became "?". Its ü is not UTF-8.
    cc = (
        "Email address,First name,Last name,Phone - work,Email permission status\r\n"
        "l.wisniewski@home.example,?ukasz,Wi?niewski,+48 22 123 45 67,Explicit\r\n"
        "kasia@home.example,Katarzyna,Müller,+48 22 765 43 21,Explicit\r\n"
    )
    result = cli("contacts", "import", str(write(tmp_path / "cc.csv", cc, encoding="cp1252")))
    assert result.exit_code == 0, result.output
    assert "as constant-contact, 2 rows, encoding cp1252 (guessed)" in result.output
    # "?ukasz" shares Łukasz's phone and agrees with his name: the same person, with a second e-mail.
    # Katarzyna shares Anna's phone with another first name: a household, so a suggestion as before.
    assert "created=1" in result.output and "updated=1" in result.output and "suggested=1" in result.output
    lukasz = person_of(engine, "email", "lukasz@firma.pl")
    assert person_of(engine, "email", "l.wisniewski@home.example") == lukasz
    assert person_of(engine, "email", "kasia@home.example") != person_of(engine, "email", "anna@firma.pl")
    with engine.connect() as conn:
        names = conn.execute(sa.select(people.c.first_name, people.c.last_name).where(people.c.id == lukasz)).one()
    assert tuple(names) == ("Łukasz", "Wiśniewski")  # the damaged spelling never replaces the good one

    body = api.get(f"/api/imports/{batch_id_of(result.output)}").json()
    assert (body["encoding"], body["encoding_guessed"]) == ("cp1252", True)
    first = api.get("/api/imports/1").json()
    assert (first["encoding"], first["encoding_guessed"]) == ("utf-8", False)
