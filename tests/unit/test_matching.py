"""The pure matcher: who each incoming record is, decided in memory from what the store said."""

from __future__ import annotations

import datetime as dt
from typing import Any

from herald.contacts.evidence import SHARED_PHONE, Evidence
from herald.contacts.identity import EMAIL, PHONE, make_identifier
from herald.contacts.matching import Incoming, Matcher

NOW = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def _row(pid: int, first: str | None = None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": pid,
        "status": "active",
        "merged_into_id": None,
        "created_batch_id": None,
        "first_name": first,
        "last_name": None,
        "company": None,
        "country": None,
        "locale": None,
        "timezone": None,
        "timezone_source": None,
        "attributes": {},
        "tags": [],
        "locked_fields": [],
        "updated_at": NOW,
    }
    return row | extra


def _record(*idents: tuple[str, str], consent: dict[str, str] | None = None, **fields: Any) -> Incoming:
    return Incoming(
        identifiers=[make_identifier(kind, value, "US") for kind, value in idents],
        fields=fields,
        consent=consent or {},
    )


def _key(kind: str, value: str) -> tuple[str, str]:
    ident = make_identifier(kind, value, "US")
    return ident.kind, ident.key


def test_an_unknown_record_creates_a_pending_person_and_repeats_fold_into_it() -> None:
    matcher = Matcher(source="test")
    first = matcher.match(_record((EMAIL, "ada@example.com"), first_name="Ada"))
    again = matcher.match(_record((EMAIL, "ADA@example.com"), last_name="Lovelace"))
    assert first.action == "created" and first.person_id < 0
    assert again.person_id == first.person_id and again.action == "deduplicated"
    assert matcher.counts == {"created": 1, "deduplicated": 1}
    # Fields were applied in memory; nothing was written (there is nothing to write to).
    assert matcher.decisions().created[first.person_id]["last_name"] == "Lovelace"


def test_a_known_identifier_matches_the_stored_person_and_only_real_changes_count() -> None:
    matcher = Matcher(source="test")
    matcher.know({_key(EMAIL, "ada@example.com"): 7}, {7: _row(7, "Ada")})
    same = matcher.match(_record((EMAIL, "ada@example.com"), first_name="Ada"))
    changed = matcher.match(_record((EMAIL, "ada@example.com"), company="Analytical Engines"))
    assert (same.person_id, same.action) == (7, "unchanged")
    assert (changed.person_id, changed.action) == (7, "updated")
    assert matcher.decisions().changes == {7: {"company": "Analytical Engines"}}


def test_a_record_naming_two_stored_people_decides_a_merge_into_the_older() -> None:
    matcher = Matcher(source="file.csv")
    matcher.know(
        {_key(EMAIL, "ada@example.com"): 3, _key(EMAIL, "countess@example.com"): 9},
        {3: _row(3, "Ada"), 9: _row(9, "Ada")},
    )
    outcome = matcher.match(_record((EMAIL, "ada@example.com"), (EMAIL, "countess@example.com")))
    assert outcome.person_id == 3
    assert [(s, o) for s, o, _ in matcher.decisions().merges] == [(3, 9)]
    assert matcher.counts["merged"] == 1
    # Later records naming the merged person's address resolve to the survivor.
    assert matcher.match(_record((EMAIL, "countess@example.com"))).person_id == 3


def test_a_shared_phone_with_another_first_name_is_a_suggestion_not_a_match() -> None:
    matcher = Matcher(source="test")
    matcher.know({_key(PHONE, "+14155550101"): 5}, {5: _row(5, "Grace")})
    outcome = matcher.match(_record((PHONE, "+14155550101"), first_name="Alan"))
    assert outcome.action == "created" and outcome.person_id < 0
    phone_key = _key(PHONE, "+14155550101")[1]
    assert matcher.decisions().suggestions == ((outcome.person_id, 5, Evidence(SHARED_PHONE, phone_key)),)


def test_statuses_become_consent_events_and_erased_keys_suppress() -> None:
    matcher = Matcher(source="test")
    erased = _key(EMAIL, "gone@example.com")
    matcher.know({}, {}, tombstoned_keys=[erased])
    kept = matcher.match(_record((EMAIL, "ada@example.com"), consent={"email": "cleaned", "sms": "pending"}))
    gone = matcher.match(_record((EMAIL, "gone@example.com")))
    # 'cleaned' is a bounce; 'pending' says nothing about consent.
    decided = matcher.decisions()
    assert decided.consent == ((kept.person_id, "email:marketing", "bounced"),)
    assert decided.suppress == {gone.person_id}
