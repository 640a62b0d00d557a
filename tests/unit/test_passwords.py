"""Password policy (length, common list, e-mail reuse) and argon2id hashing."""

from __future__ import annotations

import pytest

from herald.auth import passwords
from herald.core.errors import InvalidInputError


def test_the_common_list_is_large_and_normalised() -> None:
    common = passwords.common_passwords()
    assert len(common) >= 3000
    assert all(entry == entry.lower() and entry.strip() == entry for entry in common)
    assert {"123456", "password", "qwerty", "iloveyou", "password1234"} <= common


@pytest.mark.parametrize(
    "password",
    [
        "password1234",
        "Password1234",
        "PASSWORD1234!",
        "qwertyuiop123",
        "123456789012",
        "iloveyou2025!!",
        "!!Sunshine2024",
        "aaaaaaaaaaaaaaaa",
        "abababababababab",
    ],
)
def test_common_and_trivial_passwords_are_refused(password: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        passwords.check_policy(password)
    assert caught.value.fields["field"] == "password"
    assert "common" in caught.value.message


def test_short_passwords_are_refused_with_the_minimum_named() -> None:
    with pytest.raises(InvalidInputError, match="at least 12"):
        passwords.check_policy("kx7#Vq2!mZ")


def test_overlong_passwords_are_refused() -> None:
    passwords.check_policy("w" * 3 + "correct horse battery staple " * 35)  # 1018 chars: fine
    with pytest.raises(InvalidInputError, match="at most 1024"):
        passwords.check_policy("x1" * 600)


def test_a_password_containing_the_email_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="e-mail"):
        passwords.check_policy("margaret-1999-rules", email="margaret@example.com")


@pytest.mark.parametrize("password", ["correct horse battery staple", "violet-tundra-47-ladder", "Ünïcødé pässwörd ✓"])
def test_reasonable_passphrases_pass(password: str) -> None:
    passwords.check_policy(password, email="ops@example.com")


def test_hash_is_argon2id_and_verifies_only_the_right_password() -> None:
    hashed = passwords.hash_password("violet-tundra-47-ladder")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "violet-tundra-47-ladder")
    assert not passwords.verify_password(hashed, "violet-tundra-47-laddeR")
    assert not passwords.needs_rehash(hashed)


def test_same_password_hashes_differently_each_time() -> None:
    assert passwords.hash_password("violet-tundra-47-ladder") != passwords.hash_password("violet-tundra-47-ladder")


def test_unknown_account_and_garbage_hash_never_verify() -> None:
    assert not passwords.verify_password(None, "herald-dummy-password-for-equal-timing")
    assert not passwords.verify_password("not-a-hash", "anything at all")
