"""Normalise e-mail addresses, phone numbers and social handles into identifier match keys."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

EMAIL, PHONE, HANDLE = "email", "phone", "handle"

# Providers whose mailboxes ignore "+tag" sub-addressing; Gmail also ignores dots in the local part.
_DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
_PLUS_TAG_DOMAINS = {
    "gmail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "fastmail.com",
    "fastmail.fm",
    "proton.me",
    "protonmail.com",
    "pm.me",
}

# A conservative ASCII shape that email-validator always accepts; anything else goes to the library.
# It only saves time on the common case (hypothesis checks it never accepts what the library refuses).
_SIMPLE_EMAIL = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}"
)
_HANDLE = re.compile(r"[A-Za-z0-9_]{1,30}")
_HANDLE_HOSTS = {
    "twitter.com": "twitter",
    "x.com": "twitter",
    "mobile.twitter.com": "twitter",
    "instagram.com": "instagram",
    "threads.net": "threads",
}
# Cells that a spreadsheet would run as a formula are exported with a leading quote (export.py).
_NEUTRALISED = re.compile(r"^'(?=[=+\-@\t\r])")


class IdentifierError(ValueError):
    """A value that cannot be an identifier; `reason` is the import reject reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: str  # email | phone | handle
    value: str  # as given (trimmed)
    key: str  # the normalised match key; unique per kind in the database


def clean_cell(value: str) -> str:
    """Trim and undo our own CSV-injection neutralisation so exports re-import unchanged."""
    return _NEUTRALISED.sub("", value.strip())


_SIMPLE_LOCAL = re.compile(r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*")


def _email_domain_rules(local: str, domain: str) -> tuple[str, str]:
    domain = _DOTLESS_DOMAINS.get(domain, domain)
    if domain == "gmail.com":
        local = local.replace(".", "")
    if domain in _PLUS_TAG_DOMAINS and "+" in local:
        base = local.split("+", 1)[0]
        # Only when what remains is itself a mailbox name, so the key normalises to itself.
        if _SIMPLE_LOCAL.fullmatch(base):
            local = base
    return local, domain


@lru_cache(maxsize=65536)
def email_key(raw: str) -> str:
    """Return the match key of an e-mail address or raise IdentifierError('invalid_email')."""
    text = clean_cell(raw)
    if not text:
        raise IdentifierError("invalid_email", "the e-mail address is empty")
    if _SIMPLE_EMAIL.fullmatch(text) and len(text) <= 254:
        local, _, domain = text.casefold().rpartition("@")
    else:
        try:
            checked = validate_email(text, check_deliverability=False)
        except EmailNotValidError as exc:
            raise IdentifierError("invalid_email", f"{text!r} is not a valid e-mail address: {exc}") from exc
        local, domain = checked.local_part.casefold(), checked.ascii_domain.casefold()
    local, domain = _email_domain_rules(local, domain)
    if not local:
        raise IdentifierError("invalid_email", f"{text!r} has no mailbox name")
    return f"{local}@{domain}"


def phone_key(raw: str, region: str | None) -> str:
    """Return the E.164 form of a phone number or raise IdentifierError('invalid_phone')."""
    text = clean_cell(raw)
    if not text:
        raise IdentifierError("invalid_phone", "the phone number is empty")
    region = (region or "").upper() or None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise IdentifierError("invalid_phone", f"{text!r} is not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        where = f" for region {region}" if region and not text.startswith("+") else ""
        raise IdentifierError("invalid_phone", f"{text!r} is not a valid phone number{where}")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def handle_key(raw: str) -> str:
    """Return 'network:handle' for '@h', 'h' or a profile URL, or raise IdentifierError('invalid_handle')."""
    text = clean_cell(raw)
    network = "twitter"
    if "/" in text or text.lower().startswith(("http:", "https:", "www.")):
        url = urlsplit(text if "://" in text else f"https://{text}")
        host = (url.hostname or "").removeprefix("www.")
        network = _HANDLE_HOSTS.get(host, "")
        parts = [p for p in url.path.split("/") if p]
        if not network or not parts:
            raise IdentifierError("invalid_handle", f"{text!r} is not a profile address we know")
        text = parts[0]
    text = text.removeprefix("@")
    if not _HANDLE.fullmatch(text):
        raise IdentifierError("invalid_handle", f"{raw.strip()!r} is not a valid handle")
    return f"{network}:{text.casefold()}"


def name_key(name: str | None) -> str:
    """A first name folded for comparison: case, accents and spacing ignored."""
    if not name:
        return ""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())


# What a lossy export writes for a letter its encoding lacks ("?ukasz" for "Łukasz" in cp1252), and
# what a decoder writes for a byte it cannot read.
_DAMAGED = frozenset("?\ufffd")
_ANY = "?"


def _spelling(name: str | None) -> str:
    """Like name_key, but a damaged letter stays in place as the wildcard "?"."""
    if not name:
        return ""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(_ANY if ch in _DAMAGED else ch for ch in decomposed if ch.isalnum() or ch in _DAMAGED)


def _same_letters(a: str, b: str) -> bool:
    return all(x == y or _ANY in (x, y) for x, y in zip(a, b, strict=False))


def names_agree(a: str | None, b: str | None) -> bool:
    """Two first names agree unless both are known and differ (households share landlines).

    One may be the start of the other ("Kath", "Katherine"), and a damaged letter ("?" or
    U+FFFD) stands for any one letter, so "?ukasz" from a cp1252 export agrees with "Łukasz".
    """
    one, other = _spelling(a), _spelling(b)
    if not one.strip(_ANY) or not other.strip(_ANY):
        return True  # a name with no readable letter says nothing
    return _same_letters(one, other)  # zip stops at the shorter one: a prefix agrees


def is_damaged_spelling(candidate: str | None, original: str | None) -> bool:
    """Is `candidate` `original` with letters lost to an encoding ("?ukasz" for "Łukasz")?

    Then it carries nothing new, and must not replace the undamaged spelling.
    """
    if not candidate or (candidate.isascii() and "?" not in candidate):
        return False  # no damaged letter (only "?" folds to "?" in ASCII): the common case, without NFKD
    sc, so = _spelling(candidate), _spelling(original)
    return _ANY in sc and _ANY not in so and len(sc) == len(so) and _same_letters(sc, so)


def make_identifier(kind: str, raw: str, region: str | None = None) -> Identifier:
    """Build an Identifier of the given kind; raises IdentifierError with the reject reason."""
    if kind == EMAIL:
        key = email_key(raw)
    elif kind == PHONE:
        key = phone_key(raw, region)
    elif kind == HANDLE:
        key = handle_key(raw)
    else:
        raise IdentifierError("invalid_identifier", f"unknown identifier kind {kind!r}")
    return Identifier(kind=kind, value=clean_cell(raw), key=key)
