"""First-name agreement (the households rule) with names damaged by a lossy export encoding."""

from __future__ import annotations

import pytest

from herald.contacts.identity import is_damaged_spelling, names_agree


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("?ukasz", "Łukasz"),  # cp1252 has no Ł: Constant Contact writes "?"
        ("\ufffdukasz", "Łukasz"),  # a decoder's replacement character
        ("Ma?gorzata", "Małgorzata"),
        ("Fran?ois", "François"),
        ("Jos?", "José"),
        ("Zo?", "Zoë"),
        ("?ukasz", "Lukasz"),
        ("?ukasz", "?ukasz"),
        ("Kath", "Katherine"),  # as before: one may be the start of the other
        ("Łukasz", "łukasz"),
        ("René", "Rene"),
        ("", "Bob"),
        (None, "Bob"),
        ("???", "Bob"),  # no readable letter: says nothing
        ("?", "Mary"),
    ],
)
def test_names_that_agree(a: str | None, b: str | None) -> None:
    assert names_agree(a, b) and names_agree(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Mary", "Bob"),
        ("?ukasz", "Tomasz"),  # a wildcard stands for one letter, not for any name
        ("?ukasz", "Mukesh"),  # the letters around the wildcard still count
        ("Łukasz", "Lukasz"),  # only a damaged letter is a wildcard, not every letter NFKD cannot fold
    ],
)
def test_names_that_differ(a: str, b: str) -> None:
    assert not names_agree(a, b) and not names_agree(b, a)


def test_a_wildcard_matches_exactly_one_letter() -> None:
    assert names_agree("Jo?n", "Joan") and names_agree("Jo?n", "John")
    assert not names_agree("Jo?n", "Jason")
    assert not names_agree("?ukasz", "Łłukasz")  # two letters where the damaged name has one


def test_a_damaged_spelling_is_recognised_only_against_its_undamaged_original() -> None:
    assert is_damaged_spelling("?ukasz", "Łukasz")
    assert is_damaged_spelling("Fran\ufffdois", "François")
    assert not is_damaged_spelling("Łukasz", "?ukasz")  # the undamaged one is never the damaged copy
    assert not is_damaged_spelling("?ukasz", "?ukasz")
    assert not is_damaged_spelling("?ukasz", "Tomasz")
    assert not is_damaged_spelling("?uk", "Łukasz")  # a shorter name is another name, not damage
    assert not is_damaged_spelling("Lukasz", "Łukasz") and not is_damaged_spelling(None, "Łukasz")
