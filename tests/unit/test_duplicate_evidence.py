"""The pure rule behind duplicate suggestions: realistic pairs both ways, and the evidence in words."""

from __future__ import annotations

import pytest

from herald.contacts.evidence import (
    SAME_COMPANY_DOMAIN,
    SHARED_PHONE,
    SIMILAR_NAME,
    SIMILAR_PHONE,
    Evidence,
    PersonFacts,
    assess,
    describe,
    from_json,
    pair_evidence,
    phones_similar,
    summary,
    to_json,
)


def person(first: str | None, last: str | None, *emails: str, phones: tuple[str, ...] = ()) -> PersonFacts:
    return PersonFacts(first, last, tuple(emails), phones)


def verdict(a: PersonFacts, b: PersonFacts) -> float | None:
    return assess(pair_evidence(a, b))


REAL_DUPLICATES = [
    # A typo in the name, both at the employer's domain.
    (person("Katherine", "Johnson", "katherine.johnson@nasa.gov"), person("Katherine", "Jonson", "kj@nasa.gov")),
    # Nickname-ish spelling at the same company, different mailboxes.
    (person("Jon", "Smith", "jon@acme-tools.com"), person("John", "Smith", "john.smith@acme-tools.com")),
    # The same mobile, once typed with the wrong area code; the other address is private.
    (
        person("Maria", "Garcia", "maria.g@gmail.com", phones=("+14155550142",)),
        person("María", "García", "mgarcia@yahoo.com", phones=("+16505550142",)),
    ),
    # One switchboard, adjacent extensions, a name typed twice.
    (
        person("Li", "Wei", phones=("+442079460958",)),
        person("Li", "Wei", phones=("+442079460951",)),
    ),
    # Accents and case do not hide the same name.
    (person("René", "Größe", "rene@beispiel-gmbh.de"), person("Rene", "Grösse", "r.groesse@beispiel-gmbh.de")),
]

LOOK_ALIKE_STRANGERS = [
    # The case: two common names at a free-mail provider, nothing else in common.
    (person("John", "Smith", "john.smith@gmail.com"), person("Jon", "Smith", "jonsmith1987@gmail.com")),
    (person("John", "Smith", "js@gmail.com"), person("John", "Smith", "smithj@hotmail.com")),
    # Same company, different people.
    (person("John", "Smith", "john@acme-tools.com"), person("Mary", "Jones", "mary@acme-tools.com")),
    # Phones in the same exchange but not the same number, names unrelated.
    (
        person("Ann", "Lee", phones=("+14155550101",)),
        person("Bob", "Stone", phones=("+14155550102",)),
    ),
    # Similar phones, similar-looking surname, different first name.
    (
        person("David", "Miller", phones=("+14155550101",)),
        person("Sarah", "Miller", phones=("+14155550101"[:-1] + "7",)),
    ),
    # A lone surname is not a name to compare.
    (person(None, "Smith", "a@acme-tools.com"), person(None, "Smith", "b@acme-tools.com")),
]


@pytest.mark.parametrize(("a", "b"), REAL_DUPLICATES)
def test_real_duplicates_are_suggested(a: PersonFacts, b: PersonFacts) -> None:
    score = verdict(a, b)
    assert score is not None and score >= 88
    assert verdict(b, a) == score  # the rule does not depend on the order


@pytest.mark.parametrize(("a", "b"), LOOK_ALIKE_STRANGERS)
def test_look_alike_strangers_are_not_suggested(a: PersonFacts, b: PersonFacts) -> None:
    assert verdict(a, b) is None
    assert verdict(b, a) is None


def test_a_similar_name_alone_is_never_enough() -> None:
    same = [Evidence(SIMILAR_NAME, "100")]
    assert assess(same) is None
    assert assess([*same, Evidence(SAME_COMPANY_DOMAIN, "acme-tools.com")]) == 100.0
    # Supporting evidence without a similar name is not enough either.
    assert assess([Evidence(SAME_COMPANY_DOMAIN, "acme-tools.com"), Evidence(SIMILAR_PHONE, "+1 ~ +2")]) is None


def test_a_shared_identifier_is_enough_on_its_own() -> None:
    assert assess([Evidence(SHARED_PHONE, "+442079460958")]) == 100.0
    households = pair_evidence(
        person("Mary", "Jones", phones=("+442079460958",)), person("Bob", "Jones", phones=("+442079460958",))
    )
    assert Evidence(SHARED_PHONE, "+442079460958") in households and assess(households) == 100.0


def test_free_mail_domains_are_not_company_evidence() -> None:
    evidence = pair_evidence(person("Ann", "Lee", "ann@gmail.com"), person("Ann", "Lee", "annlee@gmail.com"))
    assert [e.kind for e in evidence] == [SIMILAR_NAME]


def test_phone_similarity() -> None:
    assert phones_similar("+14155550142", "+16505550142")  # same subscriber number, other area code
    assert phones_similar("+442079460958", "+442079460951")  # same but the last digits
    assert not phones_similar("+14155550142", "+14155550142")  # identical is a shared phone, not similar
    assert not phones_similar("+14155550142", "+14155559942")  # different subscriber
    assert not phones_similar("+352621234", "+352621299")  # too short to trust the prefix


def test_evidence_in_words_and_round_trip() -> None:
    evidence = pair_evidence(
        person("Maria", "Garcia", "maria@acme-tools.com", phones=("+14155550142",)),
        person("Maria", "Garcia", "mg@acme-tools.com", phones=("+16505550142",)),
    )
    words = summary(evidence)
    assert "similar names (100 % alike)" in words
    assert "both at company domain acme-tools.com" in words
    assert "similar phones +1 415-555-0142 and +1 650-555-0142" in words
    assert describe(Evidence(SHARED_PHONE, "+442079460958")) == "shared phone +44 20 7946 0958"
    assert from_json(to_json(evidence)) == evidence
    assert from_json([{"kind": 3}, "junk", None, {"kind": "similar_name", "detail": 91}]) == [
        Evidence(SIMILAR_NAME, "91")
    ]
