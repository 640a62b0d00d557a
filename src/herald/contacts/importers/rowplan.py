"""The row plan: which column feeds which field, decided once per file, then each record mapped to a ContactRow."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from herald.contacts.importers.layouts import (
    IDENTITY_ROLES,
    SINGLE_ROLES,
    TIME_PRIORITY,
    TIME_ROLES,
    Layout,
    Role,
)
from herald.contacts.importers.values import (
    LIST_SPLIT,
    consent_status,
    country_code,
    flag_value,
    normalise_header,
    parse_tags,
    split_full_name,
    timezone_name,
)
from herald.core.errors import InvalidInputError


class ContactRow(NamedTuple):
    """One record of a contact file, mapped but not validated.

    A NamedTuple, not a frozen dataclass: it is built once per record on the import's hot path, and a
    tuple is immutable and cheap to build without writing into slots behind the constructor's back.
    """

    row_number: int
    raw: dict[str, str]
    emails: tuple[str, ...]
    phones: tuple[str, ...]
    handles: tuple[str, ...]
    first_name: str | None
    last_name: str | None
    company: str | None
    country: str | None
    locale: str | None
    timezone: str | None
    tags: tuple[str, ...]
    attributes: dict[str, str]
    consent: dict[str, str]
    consent_at: str | None
    error: str | None = None


Cols = tuple[int, ...]
KeyedCols = tuple[tuple[int, str], ...]


def compile_plan(layout: Layout, keys: Sequence[str], *, status_hint: str | None, file_status: str | None) -> RowPlan:
    """Decide once per file what every column feeds; raise when the layout's required columns are absent."""
    norms = [normalise_header(key) for key in keys]
    _check_required(layout, norms)
    roles = _demote_repeats([layout.role(norm) for norm in norms])
    if not IDENTITY_ROLES.intersection(roles):
        raise InvalidInputError(
            "The file has no e-mail, phone or social handle column, so no contact can be identified "
            "(is its first row a header naming the columns?).",
            field="headers",
            headers=list(keys),
        )
    return RowPlan(keys, roles, default_status=_default_status(layout, norms, status_hint, file_status))


def _demote_repeats(roles: list[Role]) -> list[Role]:
    """A second "First Name" (or company, locale) column is kept as an attribute rather than dropped."""
    seen: set[Role] = set()
    for index, role in enumerate(roles):
        if role in SINGLE_ROLES and role in seen:
            roles[index] = Role.ATTRIBUTE
        seen.add(role)
    return roles


def _check_required(layout: Layout, norms: Sequence[str]) -> None:
    present = set(norms)
    missing = [name for name in layout.required if normalise_header(name) not in present]
    if missing:
        raise InvalidInputError(
            f"This is not a {layout.name} export: missing column(s) {', '.join(missing)}.",
            field="headers",
            missing=missing,
        )


def _default_status(
    layout: Layout, norms: Sequence[str], status_hint: str | None, file_status: str | None
) -> str | None:
    if status_hint is not None:
        return status_hint
    if not layout.trusts_file_name:
        return layout.default_status
    # Mailchimp writes UNSUB_* columns only in unsubscribed exports and CLEAN_* only in cleaned ones.
    if any(norm.startswith("unsub") for norm in norms):
        return "unsubscribed"
    if any(norm.startswith("clean") for norm in norms):
        return "cleaned"
    return file_status or layout.default_status


class RowPlan:
    """Column positions per field, fixed for a file, so mapping a record is index lookups and no regexes."""

    __slots__ = (
        "attrs",
        "company",
        "consent_times",
        "countries",
        "default_status",
        "email_lists",
        "email_statuses",
        "emails",
        "first",
        "full_name",
        "handles",
        "has_consent",
        "keys",
        "last",
        "locale",
        "optouts",
        "phones",
        "sms_statuses",
        "tags",
        "timezones",
        "width",
    )

    def __init__(self, keys: Sequence[str], roles: Sequence[Role], *, default_status: str | None) -> None:
        def cols(role: Role) -> Cols:
            return tuple(i for i, r in enumerate(roles) if r is role)

        def keyed(role: Role) -> KeyedCols:
            return tuple((i, keys[i]) for i, r in enumerate(roles) if r is role)

        def first_col(role: Role) -> int:
            found = cols(role)
            return found[0] if found else -1

        self.keys = tuple(keys)
        self.width = len(keys)
        self.emails, self.phones, self.handles = cols(Role.EMAIL), cols(Role.PHONE), cols(Role.HANDLE)
        self.email_lists, self.tags = cols(Role.EMAIL_LIST), cols(Role.TAGS)
        self.first, self.last, self.company = (
            first_col(Role.FIRST),
            first_col(Role.LAST),
            first_col(Role.COMPANY),
        )
        self.full_name = keyed(Role.FULL_NAME)
        self.countries, self.timezones = keyed(Role.COUNTRY), keyed(Role.TIMEZONE)
        self.locale = first_col(Role.LOCALE)
        self.email_statuses, self.sms_statuses = keyed(Role.EMAIL_STATUS), keyed(Role.SMS_STATUS)
        self.optouts = keyed(Role.EMAIL_OPTOUT)
        self.consent_times = {role: cols(role) for role in TIME_ROLES if role in roles}
        # Timestamps also stay in attributes: they are evidence for the consent ledger beyond consent_at.
        self.attrs = tuple((i, keys[i]) for i, r in enumerate(roles) if r is Role.ATTRIBUTE or r in TIME_ROLES)
        self.default_status = default_status
        self.has_consent = bool(self.email_statuses or self.optouts or self.sms_statuses or default_status)

    def build(self, row_number: int, cells: list[str]) -> ContactRow:
        """Map one record; the hot path of an import, so it favours local lookups over helper calls."""
        if len(cells) != self.width:
            fitted = self._fit(cells)
            if fitted is None:
                return self._malformed(row_number, cells)
            cells = fitted
        raw = dict(zip(self.keys, cells, strict=False))
        cells.append("")  # absent single columns point at index -1, so they read as blank without a branch
        attributes = {key: value for i, key in self.attrs if (value := cells[i].strip())}
        first, last = cells[self.first].strip() or None, cells[self.last].strip() or None
        if self.full_name:
            first, last = self._full_name(cells, first, last, attributes)
        consent = self._consent(cells, attributes) if self.has_consent else {}
        return ContactRow(
            row_number,
            raw,
            self._emails(cells) if self.email_lists else _nonblank(cells, self.emails),
            _nonblank(cells, self.phones) if self.phones else (),
            _nonblank(cells, self.handles) if self.handles else (),
            first,
            last,
            cells[self.company].strip() or None,
            _mapped(cells, self.countries, country_code, attributes) if self.countries else None,
            cells[self.locale].strip() or None,
            _mapped(cells, self.timezones, timezone_name, attributes) if self.timezones else None,
            self._tags(cells) if self.tags else (),
            attributes,
            consent,
            self._consent_at(cells, consent.get("email")) if self.consent_times else None,
            None,
        )

    def _fit(self, cells: list[str]) -> list[str] | None:
        """Pad short records (trailing empty cells are often dropped); refuse long ones that carry data."""
        width = self.width
        if len(cells) < width:
            return cells + [""] * (width - len(cells))
        if any(cell.strip() for cell in cells[width:]):
            return None
        return cells[:width]

    def _malformed(self, row_number: int, cells: list[str]) -> ContactRow:
        raw = dict(zip(self.keys, cells, strict=False))
        raw.update((f"column {i + 1}", cells[i]) for i in range(self.width, len(cells)))
        return error_row(
            row_number,
            raw,
            f"record has {len(cells)} cells but the header has {self.width}; "
            "a delimiter inside an unquoted cell is the usual cause",
        )

    def _emails(self, cells: list[str]) -> tuple[str, ...]:
        emails = [value for i in self.emails if (value := cells[i]) and not value.isspace()]
        for i in self.email_lists:
            emails.extend(part.strip() for part in LIST_SPLIT.split(cells[i]) if part.strip())
        return tuple(emails)

    def _full_name(
        self, cells: list[str], first: str | None, last: str | None, attributes: dict[str, str]
    ) -> tuple[str | None, str | None]:
        for i, key in self.full_name:
            value = cells[i].strip()
            if not value:
                continue
            if first is None and last is None:
                first, last = split_full_name(value)
            else:
                attributes[key] = value  # first/last columns win; keep the other spelling
        return first, last

    def _tags(self, cells: list[str]) -> tuple[str, ...]:
        if len(self.tags) == 1:
            value = cells[self.tags[0]]
            return parse_tags(value) if value else ()
        merged = [tag for i in self.tags if cells[i] for tag in parse_tags(cells[i])]
        return tuple(dict.fromkeys(merged))

    def _consent(self, cells: list[str], attributes: dict[str, str]) -> dict[str, str]:
        consent: dict[str, str] = {}
        email, stated = None, False
        if self.email_statuses:
            email = _mapped(cells, self.email_statuses, consent_status, attributes)
            # A status we cannot read (Mailchimp "archived") must not fall back to the file's default.
            stated = any(cells[i].strip() for i, _ in self.email_statuses)
        if self.optouts and self._opted_out(cells, attributes):
            email = "unsubscribed"  # an opt-out anywhere in the record beats a subscribed status
        if email is None and not stated:
            email = self.default_status
        if email:
            consent["email"] = email
        if self.sms_statuses:
            sms = _mapped(cells, self.sms_statuses, consent_status, attributes)
            if sms:
                consent["sms"] = sms
        return consent

    def _opted_out(self, cells: list[str], attributes: dict[str, str]) -> bool:
        opted_out = False
        for i, key in self.optouts:
            value = cells[i].strip()
            flag = flag_value(value) if value else None
            if flag is None and value:
                attributes[key] = value
            opted_out = opted_out or flag is True
        return opted_out

    def _consent_at(self, cells: list[str], status: str | None) -> str | None:
        times = self.consent_times
        for role in TIME_PRIORITY.get(status, TIME_PRIORITY[None]):
            for i in times.get(role, ()):
                value = cells[i].strip()
                if value:
                    return value
        return None


def error_row(row_number: int, raw: dict[str, str], message: str) -> ContactRow:
    return ContactRow(
        row_number=row_number,
        raw=raw,
        emails=(),
        phones=(),
        handles=(),
        first_name=None,
        last_name=None,
        company=None,
        country=None,
        locale=None,
        timezone=None,
        tags=(),
        attributes={},
        consent={},
        consent_at=None,
        error=message,
    )


def _nonblank(cells: list[str], indexes: Cols) -> tuple[str, ...]:
    if len(indexes) == 1:
        value = cells[indexes[0]]
        return (value,) if value and not value.isspace() else ()
    return tuple([value for i in indexes if (value := cells[i]) and not value.isspace()])


def _mapped(
    cells: list[str], columns: KeyedCols, convert: Callable[[str], str | None], attributes: dict[str, str]
) -> str | None:
    """The first cell the converter understands; cells it does not understand are kept as attributes."""
    result: str | None = None
    for i, key in columns:
        value = cells[i].strip()
        if not value:
            continue
        converted = convert(value)
        if converted is None:
            attributes[key] = value
        elif result is None:
            result = converted
    return result
