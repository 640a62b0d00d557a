"""Contact file readers: encodings, delimiters, layouts, row numbers and refusals, from real-looking files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.contacts.importers import FORMATS, ContactRow, ImportSource, open_source
from herald.contacts.importers.layouts import status_from_file_name
from herald.contacts.importers.reading import detect_delimiter
from herald.contacts.importers.values import country_code, parse_tags, split_full_name, timezone_name
from herald.core.errors import InvalidInputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "imports"
MAILCHIMP_ID = "4f2a9c1e7b"


def read(name: str, format: str = "auto", **kwargs: str) -> tuple[ImportSource, list[ContactRow]]:
    with open_source(FIXTURES / name, format, **kwargs) as source:
        return source, list(source)


def by_number(rows: list[ContactRow]) -> dict[int, ContactRow]:
    return {row.row_number: row for row in rows}


def write(tmp_path: Path, data: bytes | str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


def only_row(path: Path, format: str = "auto") -> ContactRow:
    with open_source(path, format) as source:
        rows = list(source)
    assert len(rows) == 1
    return rows[0]


# --- generic CSV ---------------------------------------------------------------------------------


def test_generic_file_with_bom_maps_every_column_kind() -> None:
    source, rows = read("generic_contacts.csv")
    assert (source.format, source.encoding, source.delimiter) == ("csv", "utf-8-sig", ",")
    assert source.headers[0] == "Full Name"  # no BOM leaking into the first header
    assert [row.row_number for row in rows] == [2, 3, 4, 6, 7, 8, 10]
    john = rows[0]
    assert john.raw["Full Name"] == "John Smith"
    assert john.emails == ("John.Smith+newsletter@gmail.com", "john.smith@acme.example")
    assert john.phones == ("(415) 555-0123",)
    assert john.handles == ("@jsmith",)
    assert (john.first_name, john.last_name, john.company) == ("John", "Smith", "Acme Inc")
    assert (john.country, john.timezone, john.locale) == ("US", "America/Los_Angeles", "en-US")
    assert john.tags == ("vip", "newsletter")
    assert john.attributes == {"Favourite Colour": "blue"}
    assert john.consent == {}
    assert john.consent_at is None
    assert john.error is None


def test_gmail_variants_and_national_phone_formats_are_kept_raw() -> None:
    rows = by_number(read("generic_contacts.csv")[1])
    assert rows[3].emails == (" JOHN.SMITH@GMAIL.COM ",)
    assert rows[4].emails == ("johnsmith@googlemail.com",)
    assert rows[3].phones == ("415.555.0123", "+1 415 555 0199")
    assert rows[4].phones == ("0151 23456789",)
    assert rows[6].phones == ("030 901820",)
    assert rows[8].emails == ()
    assert rows[8].phones == ("020 7946 0958", "07700 900123")


def test_full_name_column_is_split_when_there_are_no_first_and_last_columns() -> None:
    rows = by_number(read("generic_contacts.csv")[1])
    assert (rows[3].first_name, rows[3].last_name) == ("John", "Smith")  # "Smith, John"
    assert (rows[4].first_name, rows[4].last_name) == ("María", "José García")
    assert (rows[6].first_name, rows[6].last_name) == ("Ludwig", "van Beethoven")
    assert (rows[10].first_name, rows[10].last_name) == ("Prince", None)


def test_full_name_is_kept_as_attribute_when_first_and_last_columns_exist(tmp_path: Path) -> None:
    path = write(tmp_path, "Email,First Name,Last Name,Name\na@example.com,Ada,Lovelace,Countess Ada\n")
    row = only_row(path)
    assert (row.first_name, row.last_name) == ("Ada", "Lovelace")
    assert row.attributes == {"Name": "Countess Ada"}


def test_unknown_values_stay_in_attributes_and_known_ones_do_not() -> None:
    rows = by_number(read("generic_contacts.csv")[1])
    assert rows[7].country is None
    assert rows[7].attributes == {"Country": "Narnia", "Favourite Colour": "green"}
    assert rows[6].timezone is None
    assert rows[6].attributes == {"Notes": "Prefers phone calls", "Time Zone": "Eastern Time"}
    assert rows[3].timezone == "America/Los_Angeles"  # written "america/los_angeles"
    assert rows[3].attributes == {"Notes": 'Met at the\n"Spring Expo", booth 12'}
    assert rows[3].company == "Acme, Inc."


def test_tags_are_split_deduplicated_and_ordered() -> None:
    rows = by_number(read("generic_contacts.csv")[1])
    assert rows[3].tags == ("vip", "2024")
    assert rows[7].tags == ("newsletter", "events")
    assert rows[4].tags == ()


def test_cp1252_semicolon_file_with_accents() -> None:
    source, rows = read("excel_cp1252_semicolon.csv")
    assert (source.format, source.encoding, source.delimiter) == ("csv", "cp1252", ";")
    assert [(row.first_name, row.last_name) for row in rows] == [
        ("Renée", "Müller"),
        ("José", "Peña"),
        ("Jürgen", "Weiß"),
        ("François", "Lefèvre"),
    ]
    assert [row.country for row in rows] == ["FR", "ES", "DE", "FR"]
    assert rows[0].attributes["Notes"] == "Budget 5 000 €"
    assert rows[1].attributes["Notes"] == "“Call after 6”"
    assert rows[1].company == "Peña & Hijos"
    assert rows[3].raw["Notes"] == "Née Dupont – ‘Fanny’"  # CRLF line ends do not leak into cells


def test_tab_delimited_file() -> None:
    source, rows = read("tab_delimited.tsv")
    assert (source.format, source.delimiter) == ("csv", "\t")
    assert [row.row_number for row in rows] == [2, 3, 4]
    assert rows[0].phones == ("+1 (212) 555-0147",)
    assert rows[0].tags == ("vip", "press")
    assert rows[0].attributes == {"city": "New York, NY"}
    assert rows[1].attributes == {"city": "Lagos\tIsland"}
    assert rows[1].timezone == "Africa/Lagos"
    short = rows[2]
    assert (short.emails, short.first_name, short.last_name, short.phones) == (
        ("cleo@example.com",),
        "Cleo",
        "Martin",
        (),
    )
    assert short.raw["labels"] == ""
    assert short.error is None


def test_multi_line_cells_are_one_row_and_later_row_numbers_count_records() -> None:
    _, rows = read("multiline_notes.csv")
    assert [(row.row_number, row.emails[0]) for row in rows] == [
        (2, "one@example.com"),
        (3, "two@example.com"),
        (4, "three@example.com"),
        (6, "four@example.com"),
        (7, "five@example.com"),
    ]
    assert rows[0].raw["notes"] == "line one\nline two\nline three"
    assert rows[2].raw["notes"] == "carriage\r\nreturn inside, and a comma"
    assert rows[3].raw["notes"] == "ends with newline\n"


def test_ragged_records_short_ones_padded_long_ones_rejected() -> None:
    _, rows = read("ragged.csv")
    rows_by = by_number(rows)
    assert sorted(rows_by) == [2, 3, 4, 5, 6]
    assert rows_by[3].first_name == "Sam"
    assert rows_by[3].raw == {"email": "short@example.com", "first_name": "Sam", "last_name": "", "company": ""}
    malformed = rows_by[4]
    assert malformed.error is not None
    assert "7 cells" in malformed.error
    assert "header has 4" in malformed.error
    assert malformed.emails == ()
    assert malformed.raw["company"] == "Acme"
    assert malformed.raw["column 7"] == "UK"
    assert rows_by[5].error is None  # extra cells that are empty are just trailing delimiters
    assert rows_by[5].company == "Acme"
    assert rows_by[6].company == "Globex"  # reading continues after the malformed record


def test_oversized_cell_becomes_an_error_row_and_reading_continues(tmp_path: Path) -> None:
    huge = "x" * 200_000
    path = write(tmp_path, f'email,notes\na@example.com,"{huge}\nb@example.com,fine\n')
    with open_source(path) as source:
        rows = list(source)
    assert rows[0].row_number == 2
    assert rows[0].error is not None
    assert "unreadable record" in rows[0].error
    assert rows[-1].emails == ("b@example.com",)
    assert rows[-1].error is None


def test_several_columns_of_each_identity_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Email,Work Email,E-mail 2,Phone,Mobile,WhatsApp,Phone Number,Twitter Handle,Fax\n"
        "a@example.com,a@work.example,,+1 555 0100,,+44 7700 900123,555-0101,@ada,+1 555 0199\n",
    )
    row = only_row(path)
    assert row.emails == ("a@example.com", "a@work.example")
    assert row.phones == ("+1 555 0100", "+44 7700 900123", "555-0101")
    assert row.handles == ("@ada",)
    assert row.attributes == {"Fax": "+1 555 0199"}


def test_blank_and_repeated_headers_get_unique_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "email,note,note,\na@example.com,one,two,three\n")
    with open_source(path) as source:
        assert source.headers == ["email", "note", "note (2)", "column 4"]
        (row,) = list(source)
    assert row.attributes == {"note": "one", "note (2)": "two", "column 4": "three"}


def test_generic_status_columns_become_consent(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "email,status,sms status,opt-in date\n"
        "a@example.com,Subscribed,opted out,2024-01-01\n"
        "b@example.com,active member,,\n",
    )
    with open_source(path) as source:
        first, second = list(source)
    assert first.consent == {"email": "subscribed", "sms": "unsubscribed"}
    assert first.consent_at == "2024-01-01"
    assert second.consent == {}
    assert second.attributes == {"status": "active member"}


def test_excel_sep_directive_line_is_honoured_and_not_a_row(tmp_path: Path) -> None:
    path = write(tmp_path, "sep=;\r\nemail;company\r\na@example.com;Acme, Inc.\r\n")
    with open_source(path) as source:
        assert source.delimiter == ";"
        (row,) = list(source)
    assert row.row_number == 2
    assert row.company == "Acme, Inc."  # the comma is data, not a delimiter


def test_blank_lines_before_the_header_are_counted_like_a_spreadsheet(tmp_path: Path) -> None:
    row = only_row(write(tmp_path, "\n\nemail\na@example.com\n"))
    assert row.row_number == 4


def test_utf16_excel_unicode_text_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "email\tname\r\nzoë@example.com\tZoë Ørsted\r\n".encode("utf-16"))
    with open_source(path) as source:
        assert (source.encoding, source.delimiter, source.headers) == ("utf-16", "\t", ["email", "name"])
        (row,) = list(source)
    assert row.emails == ("zoë@example.com",)
    assert row.first_name == "Zoë"


def test_cp1252_bytes_after_an_ascii_sample_still_decode(tmp_path: Path) -> None:
    ascii_rows = "".join(f"user{i}@example.com,Plain Name {i}\n" for i in range(3000))
    data = ("email,name\n" + ascii_rows).encode("ascii") + "late@example.com,Renée Müller\n".encode("cp1252")
    assert len(data) > 64 * 1024
    with open_source(write(tmp_path, data)) as source:
        assert source.encoding == "utf-8"  # all the sample could tell
        rows = list(source)
    assert rows[-1].row_number == 3002
    assert (rows[-1].first_name, rows[-1].last_name) == ("Renée", "Müller")


def test_delimiter_counts_only_outside_quotes() -> None:
    assert detect_delimiter('"Name, Full, Really";Email;Phone') == ";"
    assert detect_delimiter("email\tname,with comma\tphone") == "\t"
    assert detect_delimiter("a;b,c") == ","  # a tie goes to the comma
    assert detect_delimiter("email") == ","


# --- Mailchimp -----------------------------------------------------------------------------------


def test_mailchimp_subscribed_export() -> None:
    source, rows = read(f"subscribed_members_export_{MAILCHIMP_ID}.csv")
    assert source.format == "mailchimp"
    assert len(rows) == 4
    alice = rows[0]
    assert alice.emails == ("alice.w@gmail.com",)
    assert alice.phones == ("+1 217 555 0101",)
    assert (alice.country, alice.timezone) == ("US", "America/Chicago")
    assert alice.tags == ("VIP", "Customer")
    assert alice.consent == {"email": "subscribed"}
    assert alice.consent_at == "2023-02-01 10:05:12"  # CONFIRM_TIME beats OPTIN_TIME
    assert alice.attributes["NOTES"] == "Asked about pricing\nfollow up in March"
    assert alice.attributes["LEID"] == "123456789"
    assert alice.attributes["Address"] == "12 Oak St  Springfield IL 62701 US"
    assert "CC" not in alice.attributes
    assert "TAGS" not in alice.attributes
    assert rows[1].emails == ("a.l.i.c.e.w+promo@gmail.com",)
    assert rows[1].consent_at == "2023-03-09 09:12:44"  # only OPTIN_TIME
    assert rows[2].tags == ("2024", "Customer", "VIP")
    assert rows[3].timezone is None
    assert rows[3].attributes["TIMEZONE"] == "Not/AZone"


def test_mailchimp_unsubscribed_export_is_inferred_from_unsub_columns() -> None:
    source, rows = read(f"unsubscribed_members_export_{MAILCHIMP_ID}.csv")
    assert source.format == "mailchimp"
    assert [row.consent for row in rows] == [{"email": "unsubscribed"}] * 2
    assert rows[0].consent_at == "2024-03-03 03:03:03"
    assert rows[1].attributes["UNSUB_REASON_OTHER"] == "Too many emails, sorry"
    assert rows[1].country == "GB"


def test_mailchimp_cleaned_export() -> None:
    _, rows = read(f"cleaned_members_export_{MAILCHIMP_ID}.csv")
    assert [row.consent for row in rows] == [{"email": "cleaned"}] * 2
    assert rows[0].consent_at == "2024-04-04 04:04:04"
    assert rows[1].first_name is None
    assert rows[1].country == "DE"


def test_mailchimp_status_from_file_name_and_hint(tmp_path: Path) -> None:
    plain = (FIXTURES / f"subscribed_members_export_{MAILCHIMP_ID}.csv").read_bytes()
    renamed = write(tmp_path, plain, f"pending_members_export_{MAILCHIMP_ID}.csv")
    with open_source(renamed) as source:
        assert {row.consent["email"] for row in source} == {"pending"}
    neutral = write(tmp_path, plain, "audience.csv")
    with open_source(neutral) as source:
        assert {row.consent["email"] for row in source} == {"subscribed"}
    with open_source(neutral, status_hint="non_subscribed") as source:
        assert {row.consent["email"] for row in source} == {"non_subscribed"}


def test_mailchimp_status_column_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "Email Address,Status,LEID,LAST_CHANGED\n"
        "a@example.com,unsubscribed,1,2024-05-05\n"
        "b@example.com,transactional,2,\n"
        "c@example.com,archived,3,\n"
        "d@example.com,,4,\n",
        "subscribed_members_export_x.csv",
    )
    with open_source(path) as source:
        first, second, archived, blank = list(source)
    assert first.consent == {"email": "unsubscribed"}
    assert first.consent_at == "2024-05-05"
    assert second.consent == {"email": "non_subscribed"}
    assert archived.consent == {}  # an unreadable status is not taken as the file's "subscribed"
    assert archived.attributes["Status"] == "archived"
    assert blank.consent == {"email": "subscribed"}


# --- HubSpot and Constant Contact ----------------------------------------------------------------


def test_hubspot_export() -> None:
    source, rows = read("hubspot_contacts_export.csv")
    assert source.format == "hubspot"
    hannah, ivan, jia = rows
    assert hannah.emails == ("hannah@example.de", "h.schmidt@gmail.com", "hannah.s@example.org")
    assert hannah.phones == ("+49 89 1234567", "0170 1234567")
    assert (hannah.company, hannah.country, hannah.timezone, hannah.locale) == (
        "Schmidt AG",
        "DE",
        "Europe/Berlin",
        "de",
    )
    assert hannah.handles == ("hannah_s",)
    assert hannah.consent == {}  # "false" is not an opt-in
    assert hannah.attributes["Marketing contact status"] == "Marketing contact"
    assert hannah.attributes["Lifecycle Stage"] == "customer"
    assert "Unsubscribed from all email" not in hannah.attributes
    assert ivan.consent == {"email": "unsubscribed"}
    assert ivan.handles == ("@ivanp",)
    assert jia.consent == {}
    assert jia.last_name is None


def test_constant_contact_export() -> None:
    source, rows = read("constant_contact_export.csv")
    assert source.format == "constant-contact"
    kate, leo, mia, ned = rows
    assert kate.phones == ("(617) 555-0111", "(617) 555-0112")
    assert kate.consent == {"email": "subscribed", "sms": "subscribed"}
    assert kate.tags == ("General Interest", "Newsletter", "vip")
    assert kate.last_name == "O'Brien"
    assert kate.attributes["Job title"] == "Owner"
    assert kate.attributes["City - Home"] == "Boston"
    assert (kate.country, leo.country, mia.country, ned.country) == ("US", "CA", "IT", "AU")
    assert leo.consent == {"email": "subscribed"}  # Implicit
    assert mia.consent == {"email": "unsubscribed"}
    assert ned.consent == {"email": "pending"}


def test_forced_format_overrides_detection() -> None:
    source, rows = read("hubspot_contacts_export.csv", "csv")
    assert source.format == "csv"
    assert rows[1].consent == {"email": "unsubscribed"}  # generic "unsubscribed" columns still count
    assert rows[0].emails == ("hannah@example.de",)  # no HubSpot list-splitting in the generic layout


# --- refusals ------------------------------------------------------------------------------------


def test_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        open_source(FIXTURES / "generic_contacts.csv", "salesforce")
    assert caught.value.fields["field"] == "format"
    assert "salesforce" in caught.value.message


def test_unknown_status_hint_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        open_source(FIXTURES / "generic_contacts.csv", status_hint="maybe")
    assert caught.value.fields["field"] == "status_hint"


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        (b"", "file", "empty"),
        (b"\xef\xbb\xbf", "file", "empty"),
        (b"\n\r\n  \n", "file", "empty"),
        (b"PK\x03\x04" + bytes(200), "file", "Excel"),
        (b"%PDF-1.7\n...", "file", "PDF"),
        (b"email\x00name\n", "file", "not text"),
        (bytes(range(1, 32)) * 40, "file", "not text"),
        (b"jane@example.com,Jane\n", "headers", "no header row"),
        (b"favourite colour,shoe size\nblue,42\n", "headers", "e-mail, phone or social handle"),
    ],
)
def test_unusable_files_are_refused(tmp_path: Path, data: bytes, field: str, words: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(InvalidInputError) as caught:
        open_source(path)
    assert caught.value.fields["field"] == field
    assert words in caught.value.message


@pytest.mark.parametrize("name", ["empty.csv", "no_header.csv", "contacts.xlsx"])
def test_refusal_fixtures(name: str) -> None:
    with pytest.raises(InvalidInputError):
        open_source(FIXTURES / name)


@pytest.mark.parametrize(
    ("name", "format", "missing"),
    [
        ("hubspot_contacts_export.csv", "mailchimp", "Email Address"),
        ("constant_contact_export.csv", "hubspot", "Email"),
        ("hubspot_contacts_export.csv", "constant-contact", "Email address"),
    ],
)
def test_forced_layout_names_its_missing_columns(name: str, format: str, missing: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        open_source(FIXTURES / name, format)
    assert caught.value.fields["field"] == "headers"
    assert caught.value.fields["missing"] == [missing]
    assert missing in caught.value.message


def test_header_only_file_yields_no_rows(tmp_path: Path) -> None:
    with open_source(write(tmp_path, "Email,Name\r\n")) as source:
        assert source.headers == ["Email", "Name"]
        assert list(source) == []


def test_a_source_streams_once_and_closes(tmp_path: Path) -> None:
    source = open_source(write(tmp_path, "email\na@example.com\n"))
    with source:
        assert len(list(source)) == 1
        with pytest.raises(InvalidInputError):
            iter(source)
    assert source._handle.closed


# --- value helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("United States", "US"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("us", "US"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("GB", "GB"),
        ("Great Britain", "GB"),
        ("Deutschland", "DE"),
        ("Germany", "DE"),
        ("DEU", "DE"),
        ("France", "FR"),
        ("Allemagne", "DE"),
        ("España", "ES"),
        ("Côte d’Ivoire", "CI"),
        ("Korea (South)", "KR"),
        ("Saint Lucia", "LC"),
        ("Bosnia & Herzegovina", "BA"),
        ("The Netherlands", "NL"),
        ("  japan ", "JP"),
        ("Narnia", None),
        ("ZZ", None),
        ("", None),
    ],
)
def test_country_code(text: str, code: str | None) -> None:
    assert country_code(text) == code


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("America/New_York", "America/New_York"),
        ("america/new_york", "America/New_York"),
        ("europe_slash_berlin", "Europe/Berlin"),
        ("UTC", "UTC"),
        ("Eastern Time", None),
        ("../../etc/passwd", None),
        ("America", None),
    ],
)
def test_timezone_name(text: str, zone: str | None) -> None:
    assert timezone_name(text) == zone


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ('"vip","2024"', ("vip", "2024")),
        ('"Customer", "Has, comma"', ("Customer", "Has, comma")),
        ("vip; newsletter ;vip", ("vip", "newsletter")),
        ("a|b,c", ("a", "b", "c")),
        (" , ;", ()),
    ],
)
def test_parse_tags(text: str, tags: tuple[str, ...]) -> None:
    assert parse_tags(text) == tags


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("Ada Lovelace", ("Ada", "Lovelace")),
        ("Lovelace, Ada", ("Ada", "Lovelace")),
        ("  Ludwig  van Beethoven ", ("Ludwig", "van Beethoven")),
        ("Cher", ("Cher", None)),
    ],
)
def test_split_full_name(text: str, names: tuple[str | None, str | None]) -> None:
    assert split_full_name(text) == names


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("subscribed_members_export_4f2a9c1e7b.csv", "subscribed"),
        ("unsubscribed_members_export_4f2a9c1e7b.csv", "unsubscribed"),
        ("cleaned_email_audience_export_123.csv", "cleaned"),
        ("nonsubscribed_members_export_1.csv", "non_subscribed"),
        ("contacts.csv", None),
    ],
)
def test_status_from_file_name(name: str, status: str | None) -> None:
    assert status_from_file_name(name) == status


def test_rows_are_immutable_values(tmp_path: Path) -> None:
    row = only_row(write(tmp_path, "email,first name,tags\na@example.com,Ada,vip\n"))
    values = {name: getattr(row, name) for name in ContactRow._fields}
    assert row == ContactRow(**values)
    assert (row.emails, row.first_name, row.tags, row.error) == (("a@example.com",), "Ada", ("vip",), None)
    with pytest.raises(AttributeError):
        row.first_name = "Eve"  # type: ignore[misc]


def test_formats_contract() -> None:
    assert FORMATS == ("auto", "csv", "mailchimp", "hubspot", "constant-contact")


# --- property: whatever csv.writer writes, open_source reads back ---------------------------------

_CELL = st.text(alphabet=st.sampled_from(list("ab Zé€1@.,;\t\"\n\r'-")), max_size=12)


@st.composite
def _tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    width = draw(st.integers(min_value=2, max_value=5))
    headers = ["email", *(f"col {i}" for i in range(1, width))]
    records = draw(st.lists(st.lists(_CELL, min_size=width, max_size=width), max_size=15))
    return headers, records


@settings(max_examples=150, deadline=None)
@given(
    table=_tables(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    bom=st.booleans(),
    line_end=st.sampled_from(["\r\n", "\n"]),
)
def test_written_records_read_back_with_their_row_numbers(
    tmp_path_factory: pytest.TempPathFactory,
    table: tuple[list[str], list[list[str]]],
    delimiter: str,
    bom: bool,
    line_end: str,
) -> None:
    headers, records = table
    if line_end == "\n":
        # csv.writer quotes only characters of its own line terminator, so a bare CR would not survive.
        records = [[cell.replace("\r", "") for cell in cells] for cells in records]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_end)
    writer.writerow(headers)
    writer.writerows(records)
    path = tmp_path_factory.mktemp("prop") / "table.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8-sig" if bom else "utf-8"))

    with open_source(path) as source:
        assert source.delimiter == delimiter
        assert source.headers == headers
        got = [(row.row_number, row.raw, row.error) for row in source]
    expected = [
        (number, dict(zip(headers, cells, strict=True)), None)
        for number, cells in enumerate(records, start=2)
        if any(cells)
    ]
    assert got == expected
