"""Password policy (length, common-password list) and argon2id hashing."""

from __future__ import annotations

import re
import threading
from functools import cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from herald.core.errors import InvalidInputError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # long enough for any passphrase, short enough to bound hashing work

# argon2-cffi defaults: argon2id, t=3, m=64 MiB, p=4 (RFC 9106's second recommendation).
_hasher = PasswordHasher()
# Each hash takes 64 MiB; cap how many run at once so a login burst cannot exhaust memory.
_hash_slots = threading.BoundedSemaphore(4)
# Verified against when an account does not exist, so unknown e-mails cost the same time.
_DUMMY_HASH = _hasher.hash("herald-dummy-password-for-equal-timing")
_AFFIXES = re.compile(r"^[\d\W_]*(.*?)[\d\W_]*$", re.DOTALL)


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("herald.auth").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def is_common(password: str) -> bool:
    """True if the password, or its core once leading/trailing digits and symbols go, is well known."""
    lowered = password.lower()
    known = common_passwords()
    if lowered in known:
        return True
    match = _AFFIXES.match(lowered)
    core = match.group(1) if match else lowered
    if len(core) >= 4 and core in known:
        return True
    return len(set(lowered)) <= 2  # "aaaaaaaaaaaa", "abababababab"


def check_policy(password: str, *, email: str | None = None) -> None:
    """Raise InvalidInputError(field="password") unless the password is acceptable."""
    if len(password) < MIN_LENGTH:
        raise InvalidInputError(f"Use at least {MIN_LENGTH} characters.", field="password")
    if len(password) > MAX_LENGTH:
        raise InvalidInputError(f"Use at most {MAX_LENGTH} characters.", field="password")
    if is_common(password):
        raise InvalidInputError(
            "This password is too common; pick a longer phrase of unrelated words.", field="password"
        )
    if email:
        local = email.split("@", 1)[0].lower()
        if email.lower() in password.lower() or (len(local) >= 4 and local in password.lower()):
            raise InvalidInputError("Do not use your e-mail address in your password.", field="password")


def hash_password(password: str) -> str:
    with _hash_slots:
        return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; with no hash (unknown account) spend the same time and return False."""
    with _hash_slots:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
