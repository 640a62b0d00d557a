"""Who may be contacted on a channel for a purpose now, as a set of person ids a segment can use in SQL."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from herald.consent.policy import CHANNELS, OPT_OUTS, PURPOSES, SUBSCRIBED
from herald.core.errors import InvalidInputError
from herald.db.consent_tables import consent_states


@dataclass(frozen=True, slots=True)
class PersonSet:
    """`ids` selects person ids; with `complement` the set is everyone *except* them."""

    ids: sa.Select[tuple[int]]
    complement: bool

    def inverted(self) -> PersonSet:
        return PersonSet(self.ids, not self.complement)


def _states(channel: str, purpose: str, states: tuple[str, ...]) -> sa.Select[tuple[int]]:
    return sa.select(consent_states.c.person_id).where(
        consent_states.c.channel == channel,
        consent_states.c.purpose == purpose,
        consent_states.c.state.in_(states),
    )


def permitted(channel: str, purpose: str) -> PersonSet:
    """The people `policy.can_contact(events, channel, purpose)` allows, read from the current-state table.

    Marketing needs a subscription (a non-explicit re-subscribe after an opt-out was never folded in);
    transactional mail is allowed to everyone who has not opted out.
    """
    if channel not in CHANNELS or purpose not in PURPOSES:
        raise InvalidInputError(f"unknown channel/purpose {channel}/{purpose}", field="channel")
    if purpose == "transactional":
        return PersonSet(_states(channel, purpose, OPT_OUTS), complement=True)
    return PersonSet(_states(channel, purpose, (SUBSCRIBED,)), complement=False)
