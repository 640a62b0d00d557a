"""Column layouts of contact exports (generic CSV, Mailchimp, HubSpot, Constant Contact), row mapping."""

from __future__ import annotations

import csv
import enum
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TypeVar

import phonenumbers

from herald.core.errors import InvalidInputError

CONSENT_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "non_subscribed")
_T = TypeVar("_T")
_MEMO_LIMIT = 4096  # value caches stop growing past this; exports repeat few distinct countries/tags/zones


@dataclass(frozen=True, slots=True)
class ContactRow:
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


class Role(enum.Enum):
    EMAIL = "email"
    EMAIL_LIST = "email_list"  # one cell, several addresses separated by ";" or ","
    PHONE = "phone"
    HANDLE = "handle"
    FIRST = "first_name"
    LAST = "last_name"
    FULL_NAME = "full_name"
    COMPANY = "company"
    COUNTRY = "country"
    LOCALE = "locale"
    TIMEZONE = "timezone"
    TAGS = "tags"
    EMAIL_STATUS = "email_status"
    SMS_STATUS = "sms_status"
    EMAIL_OPTOUT = "email_optout"  # a yes/no column: yes means unsubscribed from all e-mail
    CONFIRM_TIME = "confirm_time"
    OPTIN_TIME = "optin_time"
    OPTOUT_TIME = "optout_time"
    CLEAN_TIME = "clean_time"
    CHANGED_TIME = "changed_time"
    ATTRIBUTE = "attribute"


_SINGLE_ROLES = frozenset({Role.FIRST, Role.LAST, Role.COMPANY, Role.LOCALE})
_IDENTITY_ROLES = frozenset({Role.EMAIL, Role.EMAIL_LIST, Role.PHONE, Role.HANDLE})
_TIME_ROLES = (Role.CONFIRM_TIME, Role.OPTIN_TIME, Role.OPTOUT_TIME, Role.CLEAN_TIME, Role.CHANGED_TIME)
# Which timestamp explains which status, best first; the last-changed time is the fallback for all.
_TIME_PRIORITY: dict[str | None, tuple[Role, ...]] = {
    "unsubscribed": (Role.OPTOUT_TIME, Role.CHANGED_TIME),
    "cleaned": (Role.CLEAN_TIME, Role.CHANGED_TIME),
    None: (Role.CONFIRM_TIME, Role.OPTIN_TIME, Role.CHANGED_TIME, Role.OPTOUT_TIME, Role.CLEAN_TIME),
}


# --- headers ---------------------------------------------------------------------------------------


def normalise_header(header: str) -> str:
    """Case, space and punctuation blind: "E-mail Address" and "email_address" both give "emailaddress"."""
    return "".join(char for char in header.casefold() if char.isalnum())


def unique_keys(headers: Sequence[str]) -> list[str]:
    """Header texts made usable as dict keys: a blank header becomes "column N", a repeat gets " (2)"."""
    keys: list[str] = []
    seen: set[str] = set()
    for index, header in enumerate(headers, start=1):
        key = header if header.strip() else f"column {index}"
        suffix = 2
        while key in seen:
            key = f"{header} ({suffix})"
            suffix += 1
        seen.add(key)
        keys.append(key)
    return keys


def _aliases(role: Role, names: str) -> dict[str, Role]:
    return dict.fromkeys(names.split(), role)


_GENERIC: dict[str, Role] = {
    **_aliases(Role.EMAIL, "email emailaddress mail emailid"),
    **_aliases(
        Role.HANDLE,
        "twitter twitterhandle twitterusername twitterurl x xhandle xusername handle social socialhandle"
        " socialprofile mastodon bluesky instagram linkedin linkedinurl",
    ),
    **_aliases(Role.FIRST, "firstname first givenname fname forename vorname prénom"),
    **_aliases(Role.LAST, "lastname last surname familyname lname nachname nom"),
    **_aliases(Role.FULL_NAME, "name fullname contactname displayname customername"),
    **_aliases(
        Role.COMPANY,
        "company companyname organization organisation org organizationname organisationname employer"
        " business businessname accountname firma",
    ),
    **_aliases(Role.COUNTRY, "land pays"),
    **_aliases(Role.LOCALE, "locale language lang preferredlanguage languagecode"),
    **_aliases(Role.TIMEZONE, "timezone tz timezonename ianatimezone"),
    **_aliases(Role.TAGS, "tags tag labels label lists list emaillists listnames"),
    **_aliases(Role.CONFIRM_TIME, "confirmtime confirmedat confirmationdate confirmationtime"),
    **_aliases(
        Role.OPTIN_TIME,
        "optintime optindate optinat optedinat emailoptindate subscribedat subscribedate subscriptiondate"
        " consentdate consentat consenttime",
    ),
    **_aliases(
        Role.OPTOUT_TIME,
        "unsubtime unsubscribedat unsubscribedate optoutdate optouttime optedoutat emailoptoutdate",
    ),
    **_aliases(Role.CLEAN_TIME, "cleantime cleanedat"),
    **_aliases(Role.CHANGED_TIME, "lastchanged"),
}
# Status columns mean consent only in a generic file; vendor layouts name theirs explicitly.
_GENERIC_CONSENT: dict[str, Role] = {
    **_aliases(
        Role.EMAIL_STATUS,
        "status emailstatus subscriptionstatus emailsubscriptionstatus memberstatus emailconsent"
        " emailpermission emailpermissionstatus consent",
    ),
    **_aliases(Role.SMS_STATUS, "smsstatus smsconsent smssubscriptionstatus smspermission smspermissionstatus"),
    **_aliases(Role.EMAIL_OPTOUT, "unsubscribed unsubscribedfromallemail emailoptout optedout donotemail"),
}
_QUALIFIER = (
    "work|home|personal|business|private|other|primary|secondary|alternate|alternative|additional"
    "|second|third|backup|office|main|mobile|cell|landline|contact"
)
_EMAIL_RE = re.compile(rf"^(?:{_QUALIFIER})?e?mail(?:address)?(?:{_QUALIFIER})?\d*$")
_PHONE_RE = re.compile(
    rf"^(?:{_QUALIFIER}|whatsapp)?(?:phone|telephone|tel|telefon|handy|mobile|cell|cellphone|mobilephone|whatsapp|smsphone)"
    rf"(?:number|no|num)?(?:{_QUALIFIER})?\d*$"
)
_COUNTRY_RE = re.compile(r"^country(?:code|region|name|iso|isocode)?(?:home|work|other|business)?\d*$")


def generic_role(norm: str, *, consent_columns: bool) -> Role:
    role = _GENERIC.get(norm)
    if role is not None:
        return role
    if consent_columns and norm in _GENERIC_CONSENT:
        return _GENERIC_CONSENT[norm]
    if _EMAIL_RE.match(norm):
        return Role.EMAIL
    if _PHONE_RE.match(norm):
        return Role.PHONE
    if _COUNTRY_RE.match(norm):
        return Role.COUNTRY
    return Role.ATTRIBUTE


# --- layouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    overrides: Mapping[str, Role] = field(default_factory=dict)
    consent_columns: bool = False
    required: tuple[str, ...] = ()  # header texts that must be present when this layout is forced
    default_status: str | None = None  # e-mail status of a record whose file states none
    trusts_file_name: bool = False  # "unsubscribed_members_export_….csv" says the status of every record

    def role(self, norm: str) -> Role:
        return self.overrides.get(norm) or generic_role(norm, consent_columns=self.consent_columns)


GENERIC = Layout("csv", consent_columns=True)
MAILCHIMP = Layout(
    "mailchimp",
    overrides={
        **_aliases(Role.EMAIL_STATUS, "status memberstatus"),
        "cc": Role.COUNTRY,
        "address": Role.ATTRIBUTE,
        "region": Role.ATTRIBUTE,
    },
    required=("Email Address",),
    default_status="subscribed",
    trusts_file_name=True,
)
HUBSPOT = Layout(
    "hubspot",
    overrides={
        "additionalemailaddresses": Role.EMAIL_LIST,
        "countryregion": Role.COUNTRY,
        "unsubscribedfromallemail": Role.EMAIL_OPTOUT,
        "marketingcontactstatus": Role.ATTRIBUTE,  # a billing tier in HubSpot, not consent
        "associatedcompany": Role.ATTRIBUTE,
        "associatedcompanyid": Role.ATTRIBUTE,
    },
    required=("Email",),
)
CONSTANT_CONTACT = Layout(
    "constant-contact",
    overrides={
        "emailpermissionstatus": Role.EMAIL_STATUS,
        "smspermissionstatus": Role.SMS_STATUS,
        "emaillists": Role.TAGS,
    },
    required=("Email address",),
)
LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (GENERIC, MAILCHIMP, HUBSPOT, CONSTANT_CONTACT)}


def detect_layout(headers: Sequence[str]) -> Layout:
    """Pick the layout from header signatures; anything unrecognised is a generic CSV."""
    norms = {normalise_header(header) for header in headers}
    if norms & {"leid", "euid", "memberrating"}:
        return MAILCHIMP
    if "recordid" in norms and norms & {"lifecyclestage", "contactowner"}:
        return HUBSPOT
    if "emailpermissionstatus" in norms or {"emailaddress", "emaillists"} <= norms:
        return CONSTANT_CONTACT
    return GENERIC


_FILE_STATUS_RE = re.compile(
    r"(?<![a-z])(non_?subscribed|unsubscribed|subscribed|cleaned|pending|transactional)(?![a-z])"
)


def status_from_file_name(name: str) -> str | None:
    """Mailchimp names each export after its members' status: "cleaned_members_export_9f2c.csv"."""
    found = _FILE_STATUS_RE.search(name.lower())
    if found is None:
        return None
    return _STATUS_WORDS[normalise_header(found.group(1))]


# --- cell values -----------------------------------------------------------------------------------

_STATUS_WORDS: dict[str, str] = {
    **dict.fromkeys(("subscribed", "explicit", "implicit", "optedin", "optin", "active"), "subscribed"),
    **dict.fromkeys(("unsubscribed", "optedout", "optout", "unsubscribe"), "unsubscribed"),
    **dict.fromkeys(("cleaned", "bounced", "hardbounce"), "cleaned"),
    **dict.fromkeys(("pending", "pendingconfirmation", "awaitingconfirmation", "unconfirmed"), "pending"),
    **dict.fromkeys(("nonsubscribed", "transactional", "nonsubscriber", "notset"), "non_subscribed"),
}
_TRUE_WORDS = frozenset({"true", "yes", "y", "1", "x"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0"})


def consent_status(text: str) -> str | None:
    return _STATUS_WORDS.get(normalise_header(text))


def _remember(memo: dict[str, _T], key: str, value: _T) -> _T:
    if len(memo) < _MEMO_LIMIT:
        memo[key] = value
    return value


_COUNTRY_MEMO: dict[str, str | None] = {}
_EXTRA_REGIONS = frozenset({"AQ", "BV", "GS", "HM", "PN", "TF", "UM"})  # ISO codes without phone numbers


def _codes(table: str) -> dict[str, str]:
    """ "usa:US uk:GB" → {"usa": "US", "uk": "GB"}; names are written folded, "_" standing for a space."""
    pairs = (entry.split(":") for entry in table.split())
    return {name.replace("_", " "): code for name, code in pairs}


# English variants the ISO table spells differently, alpha-3 codes, and native or neighbouring-language
# names that show up in European exports. Anything else is looked up in tzdata's iso3166.tab.
_COUNTRY_ALIASES = _codes(
    "usa:US us:US america:US united_states_of_america:US unitedstates:US estados_unidos:US etats_unis:US"
    " vereinigte_staaten:US uk:GB united_kingdom:GB great_britain:GB england:GB scotland:GB wales:GB"
    " northern_ireland:GB reino_unido:GB royaume_uni:GB vereinigtes_konigreich:GB"
    " south_korea:KR korea:KR republic_of_korea:KR north_korea:KP czechia:CZ turkiye:TR ivory_coast:CI"
    " russian_federation:RU viet_nam:VN uae:AE drc:CD dr_congo:CD swaziland:SZ macedonia:MK holland:NL"
    " vatican:VA burma:MM"
    " deutschland:DE allemagne:DE alemania:DE germania:DE osterreich:AT schweiz:CH suisse:CH svizzera:CH"
    " espana:ES espagne:ES spanien:ES italia:IT italie:IT italien:IT frankreich:FR francia:FR"
    " nederland:NL niederlande:NL pays_bas:NL belgie:BE belgique:BE belgien:BE brasil:BR mexico:MX"
    " sverige:SE schweden:SE norge:NO danmark:DK suomi:FI polska:PL polen:PL cesko:CZ ceska_republika:CZ"
    " magyarorszag:HU hrvatska:HR eire:IE irland:IE portugal:PT ellada:GR nippon:JP"
    " gbr:GB deu:DE fra:FR can:CA aus:AU esp:ES ita:IT nld:NL irl:IE che:CH aut:AT bel:BE swe:SE"
    " nor:NO dnk:DK fin:FI pol:PL prt:PT bra:BR mex:MX ind:IN jpn:JP chn:CN nzl:NZ zaf:ZA"
)


def country_code(text: str) -> str | None:
    """ISO 3166-1 alpha-2 for a country code or name ("DE", "Germany", "Deutschland", "U.S.A."); else None."""
    found = _COUNTRY_MEMO.get(text, False)
    if found is not False:
        return found  # type: ignore[return-value]
    return _remember(_COUNTRY_MEMO, text, _country_code(text))


def _country_code(text: str) -> str | None:
    upper = text.strip().upper()
    if len(upper) == 2 and (upper in phonenumbers.SUPPORTED_REGIONS or upper in _EXTRA_REGIONS):
        return upper
    folded = _fold(text)
    return _COUNTRY_ALIASES.get(folded) or _iso_names().get(folded)


_DROP_IN_NAMES = str.maketrans("", "", ".'’")


def _fold(text: str) -> str:
    # Dots and apostrophes vanish rather than split words: "U.S.A." is "usa", "Côte d’Ivoire" "cote divoire".
    plain = unicodedata.normalize("NFKD", text.casefold().translate(_DROP_IN_NAMES).replace("&", " and "))
    kept = "".join(c if c.isalnum() else " " for c in plain if not unicodedata.combining(c))
    words = ["st" if word == "saint" else word for word in kept.split()]  # the ISO table writes "St Lucia"
    if words and words[0] == "the":
        words = words[1:]
    return " ".join(words)


@cache
def _iso_names() -> dict[str, str]:
    """English short names from the ISO 3166 table that ships with tzdata (a dependency already).

    phonenumbers' LOCALE_DATA has names in many languages but costs ~100 MB of memory to import.
    """
    try:
        table = resources.files("tzdata.zoneinfo").joinpath("iso3166.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return {}
    names: dict[str, str] = {}
    for line in table.splitlines():
        code, _, name = line.partition("\t")
        if line.startswith("#") or not name:
            continue
        for variant in _name_variants(name):
            names.setdefault(_fold(variant), code)
    return names


def _name_variants(name: str) -> tuple[str, ...]:
    # The table writes "Korea (South)", "Britain (UK)", "Eswatini (Swaziland)": try each reading.
    base, _, rest = name.partition(" (")
    if not rest:
        return (name,)
    inner = rest.rstrip(")")
    return (name, base, inner, f"{inner} {base}")


_ZONE_MEMO: dict[str, str | None] = {}


def timezone_name(text: str) -> str | None:
    """The IANA zone name zoneinfo knows for the text (case-insensitive; HubSpot's "_slash_" form too)."""
    found = _ZONE_MEMO.get(text, False)
    if found is not False:
        return found  # type: ignore[return-value]
    key = text.strip().casefold().replace("_slash_", "/")
    return _remember(_ZONE_MEMO, text, _zones().get(key))


@cache
def _zones() -> dict[str, str]:
    return {name.casefold(): name for name in zoneinfo.available_timezones()}


_TAG_MEMO: dict[str, tuple[str, ...]] = {}
_TAG_SPLIT = re.compile(r"[,;|]")


def parse_tags(text: str) -> tuple[str, ...]:
    """Tags from one cell: Mailchimp's quoted list ("vip","2024") or plain text split on , ; or |."""
    found = _TAG_MEMO.get(text)
    if found is not None:
        return found
    if '"' in text:
        parts: list[str] = next(csv.reader([text], skipinitialspace=True), [])
    else:
        parts = _TAG_SPLIT.split(text)
    tags = tuple(dict.fromkeys(tag for part in parts if (tag := part.strip())))
    return _remember(_TAG_MEMO, text, tags)


def split_full_name(text: str) -> tuple[str | None, str | None]:
    """First word is the first name, the rest the last ("Ludwig van Beethoven"); "Lovelace, Ada" flips."""
    if "," in text:
        last, _, first = text.partition(",")
        return first.strip() or None, last.strip() or None
    first, _, last = text.strip().partition(" ")
    return first or None, last.strip() or None


def flag_value(text: str) -> bool | None:
    word = text.strip().casefold()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


# --- per-file plan ---------------------------------------------------------------------------------

Cols = tuple[int, ...]
KeyedCols = tuple[tuple[int, str], ...]


def compile_plan(layout: Layout, keys: Sequence[str], *, status_hint: str | None, file_status: str | None) -> RowPlan:
    """Decide once per file what every column feeds; raise when the layout's required columns are absent."""
    norms = [normalise_header(key) for key in keys]
    _check_required(layout, norms)
    roles = _demote_repeats([layout.role(norm) for norm in norms])
    if not _IDENTITY_ROLES.intersection(roles):
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
        if role in _SINGLE_ROLES and role in seen:
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
        self.consent_times = {role: cols(role) for role in _TIME_ROLES if role in roles}
        # Timestamps also stay in attributes: they are evidence for the consent ledger beyond consent_at.
        self.attrs = tuple((i, keys[i]) for i, r in enumerate(roles) if r is Role.ATTRIBUTE or r in _TIME_ROLES)
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
        return _new_row(
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
            emails.extend(part.strip() for part in _TAG_SPLIT.split(cells[i]) if part.strip())
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
        for role in _TIME_PRIORITY.get(status, _TIME_PRIORITY[None]):
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


def _slot_setter(name: str) -> Callable[[ContactRow, object], None]:
    setter: Callable[[ContactRow, object], None] = getattr(ContactRow, name).__set__
    return setter


_set_row_number = _slot_setter("row_number")
_set_raw = _slot_setter("raw")
_set_emails = _slot_setter("emails")
_set_phones = _slot_setter("phones")
_set_handles = _slot_setter("handles")
_set_first_name = _slot_setter("first_name")
_set_last_name = _slot_setter("last_name")
_set_company = _slot_setter("company")
_set_country = _slot_setter("country")
_set_locale = _slot_setter("locale")
_set_timezone = _slot_setter("timezone")
_set_tags = _slot_setter("tags")
_set_attributes = _slot_setter("attributes")
_set_consent = _slot_setter("consent")
_set_consent_at = _slot_setter("consent_at")
_set_error = _slot_setter("error")


_object_new = object.__new__


def _new_row(
    row_number: int,
    raw: dict[str, str],
    emails: tuple[str, ...],
    phones: tuple[str, ...],
    handles: tuple[str, ...],
    first_name: str | None,
    last_name: str | None,
    company: str | None,
    country: str | None,
    locale: str | None,
    timezone: str | None,
    tags: tuple[str, ...],
    attributes: dict[str, str],
    consent: dict[str, str],
    consent_at: str | None,
    error: str | None,
) -> ContactRow:
    """ContactRow from its fields, written straight into the slots.

    The frozen dataclass __init__ costs about twice as much (it looks up object.__setattr__ once per field)
    and is a third of the reader's per-row budget; this writes the same slots, so the row is identical.
    """
    row: ContactRow = _object_new(ContactRow)
    _set_row_number(row, row_number)
    _set_raw(row, raw)
    _set_emails(row, emails)
    _set_phones(row, phones)
    _set_handles(row, handles)
    _set_first_name(row, first_name)
    _set_last_name(row, last_name)
    _set_company(row, company)
    _set_country(row, country)
    _set_locale(row, locale)
    _set_timezone(row, timezone)
    _set_tags(row, tags)
    _set_attributes(row, attributes)
    _set_consent(row, consent)
    _set_consent_at(row, consent_at)
    _set_error(row, error)
    return row


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
