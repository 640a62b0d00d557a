"""Resolve a person's candidate IANA zones, with where the answer came from and how sure it is."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import zoneinfo
from dataclasses import dataclass
from typing import Literal

import phonenumbers
from phonenumbers import timezone as phone_timezone

ZoneSource = Literal["contact", "phone", "address", "account_default", "unknown"]

# phonenumbers answers this when it knows nothing about a number's location.
PHONENUMBERS_UNKNOWN = "Etc/Unknown"
# zone1970.tab is the tzdata authors' "zones by country" table; the older tables are fallbacks only.
_COUNTRY_TABLES = ("zone1970.tab", "zone.tab")

_pinned: list[bool] = []


@dataclass(frozen=True, slots=True)
class ZoneResolution:
    zones: tuple[str, ...]
    source: ZoneSource
    certain: bool


UNKNOWN = ZoneResolution(zones=(), source="unknown", certain=False)


def pin_tzdata() -> None:
    """Load zones only from the pip tzdata package, so answers do not depend on the host's tzdata."""
    if zoneinfo.TZPATH != ():
        zoneinfo.reset_tzpath(to=[])
        # Zones already cached may have been read from the system database.
        zoneinfo.ZoneInfo.clear_cache()
    if not _pinned:
        _pinned.append(True)


def load_zone(name: str) -> zoneinfo.ZoneInfo:
    """Return the zone for an IANA key (from the pinned tzdata); raises ZoneInfoNotFoundError."""
    if not _pinned:
        pin_tzdata()
    return zoneinfo.ZoneInfo(name)


def is_known_zone(name: str | None) -> bool:
    if not name or name == PHONENUMBERS_UNKNOWN:
        return False
    try:
        load_zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a key naming a folder ("America") or something the file system refuses.
        return False
    return True


def _tzdata_table(name: str) -> str | None:
    path = importlib.resources.files("tzdata").joinpath("zoneinfo", name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


@functools.cache
def _zones_by_country() -> dict[str, tuple[str, ...]]:
    for table in _COUNTRY_TABLES:
        text = _tzdata_table(table)
        if text is not None:
            return _parse_country_table(text)
    return {}


def _parse_country_table(text: str) -> dict[str, tuple[str, ...]]:
    """Parse zone1970.tab / zone.tab: `codes<TAB>coordinates<TAB>zone[<TAB>comment]`."""
    by_country: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) < 3:
            continue
        for code in columns[0].split(","):
            by_country.setdefault(code.strip().upper(), []).append(columns[2].strip())
    return {code: tuple(zones) for code, zones in by_country.items()}


@functools.cache
def _canonical_names() -> frozenset[str]:
    return frozenset(zone for zones in _zones_by_country().values() for zone in zones)


@functools.cache
def _canonical_by_content() -> dict[bytes, str]:
    """Map the bytes of each canonical zone file to its name; tzdata ships links as identical copies."""
    root = importlib.resources.files("tzdata").joinpath("zoneinfo")
    by_digest: dict[bytes, str] = {}
    for zones in _zones_by_country().values():
        for zone in zones:
            path = root.joinpath(*zone.split("/"))
            if path.is_file():
                by_digest.setdefault(hashlib.sha256(path.read_bytes()).digest(), zone)
    return by_digest


def canonical_zone(name: str) -> str:
    """The canonical name for a link such as Asia/Katmandu or Europe/Guernsey (phonenumbers uses old names)."""
    if name in _canonical_names() or not is_known_zone(name):
        return name
    path = importlib.resources.files("tzdata").joinpath("zoneinfo", *name.split("/"))
    if not path.is_file():
        return name
    return _canonical_by_content().get(hashlib.sha256(path.read_bytes()).digest(), name)


def _canonical_all(zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(canonical_zone(zone) for zone in zones))


def country_zones(country: str | None) -> tuple[str, ...]:
    """Every zone in use in an ISO 3166 country (e.g. 'US' → 29 zones, 'FR' → Europe/Paris)."""
    if not country:
        return ()
    return _zones_by_country().get(country.strip().upper(), ())


def phone_zones(phone_e164: str | None) -> tuple[str, ...]:
    """The zones phonenumbers associates with a number; () when it knows nothing or cannot parse it."""
    if not phone_e164:
        return ()
    try:
        number = phonenumbers.parse(phone_e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones: tuple[str, ...] = tuple(phone_timezone.time_zones_for_number(number))
    return _canonical_all(tuple(zone for zone in zones if is_known_zone(zone)))


def _narrow_by_country(zones: tuple[str, ...], country: str | None) -> tuple[str, ...]:
    """Combine phone and address evidence.

    A number whose region spans several zones (a toll-free or mobile number) is narrowed to the
    zones of the known country. When the two disagree the person may be at either place, so both
    sets stay candidates: quiet hours then hold in all of them (RELIABILITY R2.1).
    """
    from_country = country_zones(country)
    if not from_country:
        return zones
    common = tuple(zone for zone in zones if zone in from_country)
    if common:
        return common
    return zones + tuple(zone for zone in from_country if zone not in zones)


def resolve_zone(
    person_tz: str | None,
    phone_e164: str | None,
    country: str | None,
    account_default: str | None,
) -> ZoneResolution:
    """Pick the candidate zones for one person: own zone, then phone, then address, then account."""
    if person_tz and is_known_zone(person_tz.strip()):
        return ZoneResolution((canonical_zone(person_tz.strip()),), "contact", certain=True)
    from_phone = phone_zones(phone_e164)
    if from_phone:
        zones = _narrow_by_country(from_phone, country)
        return ZoneResolution(zones, "phone", certain=len(zones) == 1)
    from_country = country_zones(country)
    if from_country:
        return ZoneResolution(from_country, "address", certain=len(from_country) == 1)
    if account_default and is_known_zone(account_default.strip()):
        return ZoneResolution((canonical_zone(account_default.strip()),), "account_default", certain=False)
    return UNKNOWN
