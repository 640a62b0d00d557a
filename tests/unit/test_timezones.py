"""Resolving a person's candidate zones: contact, phone, address, account default, unknown."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from herald.schedule.timezones import (
    ZoneResolution,
    canonical_zone,
    country_zones,
    is_known_zone,
    load_zone,
    phone_zones,
    pin_tzdata,
    resolve_zone,
)


@pytest.fixture(autouse=True)
def _pinned() -> None:
    pin_tzdata()


def test_pin_tzdata_reads_zones_only_from_the_pip_package() -> None:
    assert zoneinfo.TZPATH == ()
    # 2026 offsets come out of the pip package's data (the host's tzdata is not on the path).
    ny = load_zone("America/New_York")
    assert dt.datetime(2026, 7, 1, 12, tzinfo=ny).utcoffset() == dt.timedelta(hours=-4)


def test_the_contacts_own_zone_wins_over_everything() -> None:
    resolution = resolve_zone("Asia/Kathmandu", "+12125551234", "US", "Europe/London")
    assert resolution == ZoneResolution(("Asia/Kathmandu",), "contact", certain=True)


def test_an_invalid_own_zone_falls_through_to_the_phone() -> None:
    resolution = resolve_zone("Mars/Olympus_Mons", "+12125551234", None, None)
    assert resolution == ZoneResolution(("America/New_York",), "phone", certain=True)


def test_a_212_number_is_new_york_only() -> None:
    assert resolve_zone(None, "+1 212 555 1234", None, None) == ZoneResolution(
        ("America/New_York",), "phone", certain=True
    )


def test_a_number_whose_area_code_spans_two_zones_keeps_both_candidates() -> None:
    resolution = resolve_zone(None, "+19075550123", None, None)  # Alaska: Anchorage and Adak
    assert set(resolution.zones) == {"America/Anchorage", "America/Adak"}
    assert resolution.source == "phone"
    assert resolution.certain is False


def test_a_toll_free_number_gives_every_nanp_zone_uncertain() -> None:
    resolution = resolve_zone(None, "+18005551234", None, None)
    assert resolution.source == "phone"
    assert resolution.certain is False
    assert {"America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Pacific/Guam"} <= set(resolution.zones)


def test_a_known_country_narrows_a_toll_free_number_to_that_countrys_zones() -> None:
    resolution = resolve_zone(None, "+18005551234", "US", None)
    assert "Pacific/Guam" not in resolution.zones  # Guam is in NANP but not in the US zone table
    assert "America/Toronto" not in resolution.zones
    assert {"America/New_York", "America/Chicago", "Pacific/Honolulu"} <= set(resolution.zones)
    assert resolution.certain is False


def test_phone_and_address_that_disagree_keep_both_places_as_candidates() -> None:
    resolution = resolve_zone(None, "+12125551234", "FR", None)
    assert set(resolution.zones) == {"America/New_York", "Europe/Paris"}
    assert resolution.certain is False


def test_old_link_names_from_phonenumbers_are_canonicalised() -> None:
    # phonenumbers still says Asia/Katmandu and lists Crown dependencies separately from London.
    assert canonical_zone("Asia/Katmandu") == "Asia/Kathmandu"
    assert resolve_zone(None, "+9779841234567", None, None).zones == ("Asia/Kathmandu",)
    assert resolve_zone(None, "+447911123456", None, None) == ZoneResolution(("Europe/London",), "phone", certain=True)


def test_phonenumbers_etc_unknown_is_treated_as_no_information() -> None:
    # +800 is the international freephone code: phonenumbers answers ("Etc/Unknown",).
    assert phone_zones("+80012345678") == ()
    assert resolve_zone(None, "+80012345678", None, None).source == "unknown"


@pytest.mark.parametrize("garbage", ["", "not a number", "12125551234", "+"])
def test_unparseable_numbers_give_no_zones(garbage: str) -> None:
    assert phone_zones(garbage) == ()


def test_the_address_country_is_used_when_there_is_no_phone() -> None:
    assert resolve_zone(None, None, "fr", None) == ZoneResolution(("Europe/Paris",), "address", certain=True)
    us = resolve_zone(None, None, "US", None)
    assert us.source == "address"
    assert us.certain is False
    assert {"America/New_York", "America/Phoenix", "Pacific/Honolulu"} <= set(us.zones)


def test_country_zones_come_from_zone1970_tab() -> None:
    assert country_zones("NP") == ("Asia/Kathmandu",)
    assert "Australia/Lord_Howe" in country_zones("AU")
    assert "Australia/Eucla" in country_zones("AU")
    assert country_zones("ZZ") == ()
    assert country_zones(None) == ()


def test_the_account_default_is_a_guess_not_a_certainty() -> None:
    assert resolve_zone(None, None, None, "US/Eastern") == ZoneResolution(
        ("America/New_York",), "account_default", certain=False
    )


@pytest.mark.parametrize("name", ["America", "America/", "../../etc/passwd", "/etc/localtime", "x" * 300, ""])
def test_junk_zone_names_from_contact_data_are_not_zones(name: str) -> None:
    assert not is_known_zone(name)
    assert resolve_zone(name, None, None, None).source == "unknown"


def test_nothing_known_means_unknown_with_no_zones() -> None:
    assert resolve_zone(None, None, None, None) == ZoneResolution((), "unknown", certain=False)
    assert resolve_zone("  ", "", "", "Not/AZone") == ZoneResolution((), "unknown", certain=False)
