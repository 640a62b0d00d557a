"""Cell value parsers for contact files: consent words, countries, time zones, tags, names, flags."""

from __future__ import annotations

import csv
import re
import unicodedata
import zoneinfo
from functools import cache
from importlib import resources
from typing import TypeVar

import phonenumbers

_T = TypeVar("_T")
_MEMO_LIMIT = 4096  # value caches stop growing past this; exports repeat few distinct countries/tags/zones
LIST_SPLIT = re.compile(r"[,;|]")  # what separates several values in one cell


def normalise_header(header: str) -> str:
    """Case, space and punctuation blind: "E-mail Address" and "email_address" both give "emailaddress"."""
    return "".join(char for char in header.casefold() if char.isalnum())


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


def parse_tags(text: str) -> tuple[str, ...]:
    """Tags from one cell: Mailchimp's quoted list ("vip","2024") or plain text split on , ; or |."""
    found = _TAG_MEMO.get(text)
    if found is not None:
        return found
    if '"' in text:
        parts: list[str] = next(csv.reader([text], skipinitialspace=True), [])
    else:
        parts = LIST_SPLIT.split(text)
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
