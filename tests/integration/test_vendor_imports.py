"""Every real-world fixture export imports end to end through the CLI (or is refused with a clear message)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from herald.consent.ledger import consent_summary, load_events
from herald.db.contacts_tables import identifiers, people
from tests.helpers import cli

FIXTURES = Path(__file__).parent.parent / "fixtures" / "imports"
ACCEPTED = [
    "generic_contacts.csv",
    "excel_cp1252_semicolon.csv",
    "tab_delimited.tsv",
    "multiline_notes.csv",
    "subscribed_members_export_4f2a9c1e7b.csv",
    "unsubscribed_members_export_4f2a9c1e7b.csv",
    "cleaned_members_export_4f2a9c1e7b.csv",
    "hubspot_contacts_export.csv",
    "constant_contact_export.csv",
    "ragged.csv",
]
REFUSED = ["no_header.csv", "empty.csv", "contacts.xlsx"]


def _state(engine: sa.Engine, email_key: str) -> str:
    with engine.connect() as conn:
        pid = conn.scalar(sa.select(identifiers.c.person_id).where(identifiers.c.key == email_key))
        assert pid is not None, email_key
        return consent_summary(load_events(conn, [pid])[pid])["email:marketing"].state


def test_all_vendor_exports_import_into_one_database(engine: sa.Engine, cli_env: dict[str, str]) -> None:
    formats = {}
    for name in ACCEPTED:
        result = cli("contacts", "import", str(FIXTURES / name), "--rejects", cli_env["HERALD_DATA_DIR"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        formats[name] = result.output.split(" as ", 1)[1].split(",", 1)[0]
    assert formats["hubspot_contacts_export.csv"] == "hubspot"
    assert formats["constant_contact_export.csv"] == "constant-contact"
    assert formats["cleaned_members_export_4f2a9c1e7b.csv"] == "mailchimp"
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(people)) > 20
        keys = set(conn.scalars(sa.select(identifiers.c.key)))
    # The generic file's Gmail variants are one identifier key.
    assert "johnsmith@gmail.com" in keys
    assert not {k for k in keys if k.startswith("john.smith") and k.endswith("gmail.com")}
    states = {_state(engine, k) for k in keys if "@" in k}
    assert {"subscribed", "unsubscribed", "bounced"} <= states


@pytest.mark.parametrize("name", REFUSED)
def test_unreadable_files_are_refused_clearly(engine: sa.Engine, cli_env: dict[str, str], name: str) -> None:
    result = cli("contacts", "import", str(FIXTURES / name))
    assert result.exit_code == 1
    assert "error (invalid_input)" in result.output
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(people)) == 0
