"""Why two people may be one: evidence for a pair, the rule that decides it is worth an operator's time, words."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from rapidfuzz import fuzz

from herald.contacts.identity import name_key

# Evidence kinds. A shared identifier proves a link on its own; the others only support a similar name.
SHARED_PHONE = "shared_phone"  # one person's phone is in the other's source record (households)
SHARED_IDENTIFIER = "shared_identifier"  # any other identifier key found with both people
SAME_COMPANY_DOMAIN = "same_company_domain"  # both have an address at the same non-free-mail domain
SIMILAR_PHONE = "similar_phone"  # same subscriber number (last digits) or same number but the last digits
SIMILAR_NAME = "similar_name"  # rapidfuzz token_sort_ratio of the full names, 0–100

STRONG = frozenset({SHARED_PHONE, SHARED_IDENTIFIER})
SUPPORTING = frozenset({SAME_COMPANY_DOMAIN, SIMILAR_PHONE})
NAME_THRESHOLD = 88.0
TAIL_DIGITS = 7  # the subscriber part of most numbers: a different area or country code is a typo, not a stranger
HEAD_SLACK = 2  # numbers equal but for the last two digits: one switchboard, or one mistyped digit

# Thousands of strangers share these: an address there says nothing about who someone works with.
FREE_MAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "ymail.com",
        "hotmail.com",
        "hotmail.co.uk",
        "outlook.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
        "naver.com",
        "rediffmail.com",
        "zoho.com",
        "fastmail.com",
        "tutanota.com",
        # Internet providers' mailboxes: customers, not colleagues.
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
        "bellsouth.net",
        "cox.net",
        "charter.net",
        "earthlink.net",
        "btinternet.com",
        "sky.com",
        "orange.fr",
        "free.fr",
        "wanadoo.fr",
        "laposte.net",
        "t-online.de",
        "libero.it",
    }
)


@dataclass(frozen=True, slots=True)
class Evidence:
    kind: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class PersonFacts:
    """What the rule looks at for one person: names, e-mail keys and E.164 phone keys."""

    first_name: str | None = None
    last_name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    company_domains: frozenset[str] = field(init=False)
    sorted_name: str = field(init=False)  # folded name tokens, sorted; '' without a first and a last name

    def __post_init__(self) -> None:
        object.__setattr__(self, "company_domains", frozenset(company_domain(e) for e in self.emails) - {""})
        # A lone 'Smith' matches half a city: compare only people with a first and a last name.
        named = name_key(self.first_name) and name_key(self.last_name)
        tokens = sorted(filter(None, (name_key(part) for part in self.full_name.split()))) if named else []
        object.__setattr__(self, "sorted_name", " ".join(tokens))

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p and p.strip())


def company_domain(email_key: str) -> str:
    """The domain of an address unless it is a free-mail provider ('' then)."""
    domain = email_key.rpartition("@")[2]
    return "" if domain in FREE_MAIL else domain


def name_similarity(a: PersonFacts, b: PersonFacts, cutoff: float = 0.0) -> float:
    """0–100, rapidfuzz token_sort_ratio of the folded names (0 below `cutoff` or without a full name)."""
    if not a.sorted_name or not b.sorted_name:
        return 0.0
    # token_sort_ratio is the ratio of the sorted tokens; they are sorted once per person, not per pair.
    return float(fuzz.ratio(a.sorted_name, b.sorted_name, score_cutoff=cutoff))


def phones_similar(a: str, b: str) -> bool:
    """Different numbers that are likely one mistyped or re-formatted number."""
    if a == b:
        return False
    da, db = a.lstrip("+"), b.lstrip("+")
    if len(da) >= TAIL_DIGITS and da[-TAIL_DIGITS:] == db[-TAIL_DIGITS:]:
        return True
    return len(da) == len(db) and len(da) >= 10 and da[:-HEAD_SLACK] == db[:-HEAD_SLACK]


def pair_evidence(a: PersonFacts, b: PersonFacts, *, name_threshold: float = NAME_THRESHOLD) -> list[Evidence]:
    """Every piece of evidence that links two people; a similar name is listed only above the threshold."""
    found: list[Evidence] = []
    score = name_similarity(a, b, name_threshold)
    if score:
        found.append(Evidence(SIMILAR_NAME, f"{score:.0f}"))
    shared_phones = sorted(set(a.phones) & set(b.phones))
    found.extend(Evidence(SHARED_PHONE, p) for p in shared_phones)
    found.extend(Evidence(SHARED_IDENTIFIER, e) for e in sorted(set(a.emails) & set(b.emails)))
    found.extend(Evidence(SAME_COMPANY_DOMAIN, d) for d in sorted(a.company_domains & b.company_domains))
    similar = sorted({f"{x} ~ {y}" for x in a.phones for y in b.phones if phones_similar(x, y)})
    found.extend(Evidence(SIMILAR_PHONE, s) for s in similar)
    return found


def assess(evidence: Sequence[Evidence]) -> float | None:
    """The pair's score (0–100) if the evidence is worth an operator's time, else None.

    A shared identifier is enough on its own (100). A similar name is never enough alone: it needs a
    same company domain or a similar phone beside it, and then the name similarity is the score.
    """
    kinds = {e.kind for e in evidence}
    if kinds & STRONG:
        return 100.0
    names = [float(e.detail) for e in evidence if e.kind == SIMILAR_NAME]
    if names and kinds & SUPPORTING:
        return max(names)
    return None


def _phone_words(key: str) -> str:
    try:
        number = phonenumbers.parse(key, None)
    except phonenumbers.NumberParseException:
        return key
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))


def describe(item: Evidence) -> str:
    """One piece of evidence in words, for the page and the CLI."""
    if item.kind == SIMILAR_NAME:
        return f"similar names ({item.detail} % alike)"
    if item.kind == SHARED_PHONE:
        return f"shared phone {_phone_words(item.detail)}" if item.detail else "a shared phone number"
    if item.kind == SHARED_IDENTIFIER:
        return f"shared identifier {item.detail}"
    if item.kind == SAME_COMPANY_DOMAIN:
        return f"both at company domain {item.detail}"
    if item.kind == SIMILAR_PHONE:
        left, _, right = item.detail.partition(" ~ ")
        return f"similar phones {_phone_words(left)} and {_phone_words(right)}"
    return f"{item.kind.replace('_', ' ')}: {item.detail}"


def summary(evidence: Iterable[Evidence]) -> str:
    return "; ".join(describe(e) for e in evidence) or "no evidence recorded"


def from_json(value: Any) -> list[Evidence]:
    """Evidence as stored (a JSON list of {kind, detail}); anything malformed is skipped, not raised."""
    items: list[Evidence] = []
    for entry in value or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("kind"), str):
            items.append(Evidence(str(entry["kind"]), str(entry.get("detail") or "")))
    return items


def to_json(evidence: Iterable[Evidence]) -> list[dict[str, str]]:
    return [e.as_dict() for e in evidence]
