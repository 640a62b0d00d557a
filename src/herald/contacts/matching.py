"""The pure matcher: decide which person each incoming record is, and what it changes, without I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from herald.consent.policy import CHANNELS
from herald.contacts.evidence import SHARED_PHONE, Evidence
from herald.contacts.identity import PHONE, Identifier, is_damaged_spelling, names_agree
from herald.contacts.survivorship import SCALAR_FIELDS, apply_update, person_fields

# How a file's member status maps to consent events ('pending' and 'non_subscribed' say nothing).
STATUS_TO_EVENT = {
    "subscribed": "subscribed",
    "unsubscribed": "unsubscribed",
    "cleaned": "bounced",
    "bounced": "bounced",
    "complained": "complained",
    "suppressed": "suppressed",
}


@dataclass(slots=True)
class Incoming:
    """One validated record: what it says about a person, with its provenance."""

    identifiers: list[Identifier]
    fields: dict[str, Any]  # SCALAR_FIELDS subset + attributes + tags
    consent: dict[str, str] = field(default_factory=dict)  # channel → subscribed | unsubscribed | cleaned | …
    row_number: int | None = None
    raw: dict[str, str] | None = None


@dataclass(slots=True)
class Pending:
    """A person created by this batch but not yet written."""

    temp_id: int
    fields: dict[str, Any]
    idents: list[Identifier] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    person_id: int  # negative while pending; resolved by flush()
    action: str  # created | updated | unchanged | deduplicated


def _undamaged(incoming: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Leave out a name that only repeats the person's own with letters lost to an export's encoding."""
    damaged = [n for n in ("first_name", "last_name") if is_damaged_spelling(incoming.get(n), current.get(n))]
    return {k: v for k, v in incoming.items() if k not in damaged} if damaged else incoming


@dataclass(frozen=True, slots=True)
class Decisions:
    """What the matcher decided so far in this chunk, as plain values (negative ids: people to create)."""

    created: Mapping[int, Mapping[str, Any]]
    changes: Mapping[int, Mapping[str, Any]]
    merges: tuple[tuple[int, int, str], ...]  # (survivor, merged, reason)
    suggestions: tuple[tuple[int, int, Evidence], ...]
    consent: tuple[tuple[int, str, str], ...]  # (person, 'channel:purpose', event kind)
    suppress: frozenset[int]


class Matcher:
    """Resolves records in order against what it was told about stored people (`know`), in memory.

    Negative ids are people this chunk creates. What it decided waits in its lists (people to create,
    changes, identifiers, sources, consent events, merges, suggestions) for the Resolver to write.
    """

    def __init__(self, *, source: str, batch_id: int | None = None) -> None:
        self.source, self.batch_id = source, batch_id
        self.counts: Counter[str] = Counter()
        self._next_temp = -1
        self._tombstoned_keys: set[tuple[str, str]] = set()
        self._reset()

    def _reset(self) -> None:
        self._key_owner: dict[tuple[str, str], int] = {}  # (kind, key) → person id (negative = pending)
        self._pending: dict[int, Pending] = {}
        self._existing: dict[int, Any] = {}  # person rows loaded for this chunk
        self._changes: dict[int, dict[str, Any]] = {}
        self._new_idents: list[tuple[int, Identifier]] = []
        self._sources: list[tuple[int, int, dict[str, str]]] = []
        self._events: list[tuple[int, str, str]] = []  # (person, 'channel:purpose', kind)
        self._suggestions: list[tuple[int, int, Evidence]] = []
        self._suppress: set[int] = set()
        self._alias: dict[int, int] = {}  # merged (this chunk) → survivor
        self._merges: list[tuple[int, int, str]] = []

    def decisions(self) -> Decisions:
        return Decisions(
            created={pid: dict(p.fields) for pid, p in self._pending.items()},
            changes={pid: dict(values) for pid, values in self._changes.items()},
            merges=tuple(self._merges),
            suggestions=tuple(self._suggestions),
            consent=tuple(self._events),
            suppress=frozenset(self._suppress),
        )

    def know(
        self,
        owners: Mapping[tuple[str, str], int],
        rows: Mapping[int, Any],
        tombstoned_keys: Iterable[tuple[str, str]] = (),
    ) -> None:
        """What the store says: who holds each (kind, key), those people's rows, and keys of erased people."""
        self._key_owner.update(owners)
        self._existing.update(rows)
        self._tombstoned_keys = set(tombstoned_keys)

    def _owner(self, pid: int) -> int:
        # Follow merges decided (or made) earlier to the surviving person.
        while pid in self._alias:
            pid = self._alias[pid]
        row = self._existing.get(pid)
        while row is not None and row["status"] == "merged" and row["merged_into_id"]:
            pid = row["merged_into_id"]
            row = self._existing.get(pid)
        return pid

    def _first_name(self, pid: int) -> str | None:
        if pid < 0:
            fields = self._pending[pid].fields
        else:
            fields = {"first_name": self._existing[pid]["first_name"]} | self._changes.get(pid, {})
        name = fields.get("first_name")
        return str(name) if name else None

    def match(self, record: Incoming) -> Outcome:
        """Decide who this record is (and what it changes) in memory; nothing is written."""
        strong: list[int] = []
        shared_phone: list[tuple[int, str]] = []
        for ident in record.identifiers:
            owner = self._key_owner.get((ident.kind, ident.key))
            if owner is None:
                continue
            owner = self._owner(owner)
            if ident.kind == PHONE and not names_agree(self._first_name(owner), record.fields.get("first_name")):
                shared_phone.append((owner, ident.key))
            elif owner not in strong:
                strong.append(owner)
        action = "unchanged"
        if not strong:
            pid, action = self._create(record), "created"
        else:
            pid = self._combine(strong, record)
            action = "deduplicated" if self._created_here(pid) else "unchanged"
        changed = self._absorb(pid, record, fields_applied=action == "created")
        if action == "unchanged" and changed:
            action = "updated"
        for other, phone in shared_phone:
            if other != pid:
                self._suggestions.append((min(pid, other), max(pid, other), Evidence(SHARED_PHONE, phone)))
        if any((i.kind, i.key) in self._tombstoned_keys for i in record.identifiers):
            self._suppress.add(pid)
        if record.raw is not None and record.row_number is not None:
            self._sources.append((pid, record.row_number, record.raw))
        self.counts[action] += 1
        return Outcome(person_id=pid, action=action)

    def _created_here(self, pid: int) -> bool:
        """Did an earlier row of this same import create this person (in this chunk or a previous one)?"""
        if pid < 0:
            return True
        row = self._existing.get(pid)
        return self.batch_id is not None and row is not None and row["created_batch_id"] == self.batch_id

    def _create(self, record: Incoming) -> int:
        temp = self._next_temp
        self._next_temp -= 1
        fields = {name: record.fields.get(name) for name in SCALAR_FIELDS}
        fields["attributes"] = dict(record.fields.get("attributes") or {})
        fields["tags"] = list(record.fields.get("tags") or [])
        fields["locked_fields"] = []
        self._pending[temp] = Pending(temp_id=temp, fields=fields)
        return temp

    def _combine(self, strong: list[int], record: Incoming) -> int:
        """Several people share this record's e-mail or handle: they are one person."""
        existing = sorted(p for p in strong if p > 0)
        pending = [p for p in strong if p < 0]
        target = existing[0] if existing else pending[0]
        for other in existing[1:]:
            row_hint = f" row {record.row_number}" if record.row_number else ""
            self._merge_existing(target, other, f"{self.source}{row_hint}: shares an e-mail or handle")
        for temp in pending:
            if temp != target:
                self._fold_pending(temp, target)
        return target

    def _fold_pending(self, temp: int, target: int) -> None:
        folded = self._pending.pop(temp)
        # The row that created it turned out to be a duplicate of the target all along.
        self.counts["created"] -= 1
        self.counts["deduplicated"] += 1
        self._absorb_fields(target, folded.fields)
        for ident in folded.idents:
            self._key_owner[(ident.kind, ident.key)] = target
            if target < 0:
                self._pending[target].idents.append(ident)
        self._new_idents = [(target if p == temp else p, i) for p, i in self._new_idents]
        self._sources = [(target if p == temp else p, n, raw) for p, n, raw in self._sources]
        self._events = [(target if p == temp else p, c, k) for p, c, k in self._events]
        self._suggestions = [
            (min(a2, b2), max(a2, b2), why)
            for a, b, why in self._suggestions
            for a2, b2 in [(target if a == temp else a, target if b == temp else b)]
            if a2 != b2
        ]
        if temp in self._suppress:
            self._suppress.add(target)

    def _merge_existing(self, survivor: int, other: int, reason: str) -> None:
        """Decide a merge now, carry it out at flush; until then `other` is an alias of `survivor`."""
        # Keys still naming `other` resolve through the alias (see _owner); no need to rewrite them.
        self._alias[other] = survivor
        self._merges.append((survivor, other, reason))
        self.counts["merged"] += 1

    def _absorb(self, pid: int, record: Incoming, *, fields_applied: bool = False) -> bool:
        # A person just created from this record already holds its fields: no survivorship to run.
        changed = False if fields_applied else self._absorb_fields(pid, record.fields)
        for ident in record.identifiers:
            key = (ident.kind, ident.key)
            if key in self._key_owner:
                continue  # already this person's, or a shared phone that stays with its first holder
            self._key_owner[key] = pid
            self._new_idents.append((pid, ident))
            if pid < 0:
                self._pending[pid].idents.append(ident)
            changed = True
        for target, status in record.consent.items():
            channel, _, purpose = target.partition(":")
            kind = STATUS_TO_EVENT.get(status)
            if kind and channel in CHANNELS:
                self._events.append((pid, f"{channel}:{purpose or 'marketing'}", kind))
        return changed

    def _absorb_fields(self, pid: int, incoming: dict[str, Any]) -> bool:
        if pid < 0:
            current = self._pending[pid].fields
            updates = apply_update(current, _undamaged(incoming, current), frozenset())
            current.update(updates)
            return bool(updates)
        row = self._existing[pid]
        current = person_fields(row) | self._changes.get(pid, {})
        updates = apply_update(current, _undamaged(incoming, current), frozenset(row["locked_fields"] or []))
        if updates:
            self._changes.setdefault(pid, {}).update(updates)
        return bool(updates)
