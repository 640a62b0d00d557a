"""Normalisation is idempotent, and the e-mail fast path never disagrees with email-validator."""

from __future__ import annotations

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from herald.contacts.identity import (
    _ANY,
    IdentifierError,
    _same_letters,
    _spelling,
    email_key,
    handle_key,
    is_damaged_spelling,
    phone_key,
)

local = st.from_regex(r"[A-Za-z0-9_%+-]{1,12}(\.[A-Za-z0-9_%+-]{1,8}){0,2}", fullmatch=True)
domain = st.sampled_from(["gmail.com", "googlemail.com", "Example.COM", "sub.example.org", "outlook.com", "acme.io"])
emails = st.builds(lambda loc, dom, pad: f"{pad}{loc}@{dom}{pad}", local, domain, st.sampled_from(["", " ", "\t"]))


@settings(max_examples=300)
@given(emails)
def test_email_key_is_idempotent(address: str) -> None:
    try:
        key = email_key(address)
    except IdentifierError:
        return
    assert email_key(key) == key
    assert key == key.casefold().strip()


@settings(max_examples=300)
@given(st.text(min_size=1, max_size=40))
def test_email_fast_path_agrees_with_the_library(text: str) -> None:
    try:
        ours = email_key(text)
    except IdentifierError:
        ours = None
    try:
        checked = validate_email(text.strip(), check_deliverability=False)
        library_ok = True
        assert ours is not None
        assert ours.rpartition("@")[2] in (checked.ascii_domain.casefold(), "gmail.com")
    except EmailNotValidError:
        library_ok = False
    assert library_ok == (ours is not None) or text.startswith("'")


regions = st.sampled_from(["US", "GB", "DE", "FR", "IN", "NP", "AU"])


@settings(max_examples=200)
@given(regions, st.data())
def test_phone_key_is_idempotent(region: str, data: st.DataObject) -> None:
    example = phonenumbers.example_number(region)
    assert example is not None
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    spaced = data.draw(st.sampled_from([national, national.replace(" ", ""), f" {national} "]))
    key = phone_key(spaced, region)
    assert phone_key(key, None) == key == phone_key(key, "US")
    assert key.startswith("+") and key[1:].isdigit()


@settings(max_examples=200)
@given(st.from_regex(r"[A-Za-z0-9_]{1,15}", fullmatch=True))
def test_handle_forms_share_one_key(name: str) -> None:
    key = handle_key(name)
    forms = [f"@{name}", name.upper(), f"https://twitter.com/{name}", f"https://x.com/{name}/", f"x.com/{name}?s=20"]
    assert {handle_key(f) for f in forms} == {key}
    assert handle_key(key.partition(":")[2]) == key


def _damaged_by_definition(candidate: str | None, original: str | None) -> bool:
    # is_damaged_spelling without its ASCII shortcut: the definition the shortcut must agree with.
    sc, so = _spelling(candidate), _spelling(original)
    return _ANY in sc and _ANY not in so and len(sc) == len(so) and _same_letters(sc, so)


@given(
    st.one_of(st.none(), st.text(max_size=12), st.text(alphabet="abcdeÉéŁł?\ufffd\ufe56\uff1f ", max_size=8)),
    st.one_of(st.none(), st.text(max_size=12), st.text(alphabet="abcdeÉéŁł?\ufffd ", max_size=8)),
)
def test_the_ascii_shortcut_of_is_damaged_spelling_agrees_with_its_definition(
    candidate: str | None, original: str | None
) -> None:
    assert is_damaged_spelling(candidate, original) == _damaged_by_definition(candidate, original)
