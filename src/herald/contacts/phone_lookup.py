"""Read a phone number the way `contacts list` shows it: in the national format of the person's own country."""

from __future__ import annotations

import sqlalchemy as sa

from herald.contacts.identity import IdentifierError, phone_key
from herald.core.errors import InvalidInputError
from herald.db.contacts_tables import identifiers, people


def _international(text: str) -> bool:
    return text.lstrip().startswith(("+", "00"))


def phone_owner(conn: sa.Connection, text: str, default_region: str) -> int | None:
    """The one active person whose phone `text` is, read with that person's country; None when nobody's.

    "01 23 45 67 89" is a French number for a person in FR and no number at all in the US: the same digits
    are parsed once per country on file (plus the default region), and a stored key counts only when its
    owner's country is the one that produced it (or the owner has none and it is the default region).
    Two people matching is an error: guessing would message the wrong person.
    """
    if _international(text):
        return None  # unambiguous: the ordinary resolver reads it
    countries = {c for c in conn.execute(sa.select(people.c.country).distinct()).scalars() if c}
    by_key: dict[str, set[str]] = {}
    for region in sorted({*countries, default_region.upper()}):
        try:
            by_key.setdefault(phone_key(text, region), set()).add(region)
        except IdentifierError:
            continue
    if not by_key:
        return None
    rows = conn.execute(
        sa.select(identifiers.c.key, people.c.id, people.c.country)
        .join(people, people.c.id == identifiers.c.person_id)
        .where(identifiers.c.kind == "phone", identifiers.c.key.in_(list(by_key)), people.c.status == "active")
    ).all()
    owners = sorted(
        {person_id for key, person_id, country in rows if (country or default_region.upper()) in by_key[key]}
    )
    if len(owners) > 1:
        raise InvalidInputError(
            f"{text!r} is the phone number of several people ({', '.join(map(str, owners))}) in different "
            "countries; give it with its country code (+…) or name the person.",
            field="phone",
        )
    return owners[0] if owners else None
