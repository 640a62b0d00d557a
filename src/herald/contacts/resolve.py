"""Resolve incoming contact records to people: match keys, apply survivorship, merge, suggest, write in bulk."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import event_row, load_events
from herald.consent.policy import ALL_PURPOSES, CHANNELS, OPT_OUTS, consent_state
from herald.contacts.dedupe import store_suggestion
from herald.contacts.evidence import SHARED_PHONE, Evidence
from herald.contacts.identity import EMAIL, HANDLE, PHONE, Identifier, is_damaged_spelling, names_agree
from herald.contacts.merge import merge_people
from herald.contacts.store import lookup_keys, people_by_id, person_fields, tombstone_hash, tombstoned
from herald.contacts.survivorship import SCALAR_FIELDS, apply_update
from herald.db.bulk import bulk_insert
from herald.db.tables import (
    batch_changes,
    consent_events,
    identifiers,
    people,
    source_records,
    tombstones,
)

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
class _Pending:
    """A person created by this batch but not yet written."""

    temp_id: int
    fields: dict[str, Any]
    idents: list[Identifier] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    person_id: int  # negative while pending; resolved by flush()
    action: str  # created | updated | unchanged | deduplicated


def allocate_person_ids(conn: sa.Connection, count: int) -> list[int]:
    """Reserve `count` person ids up front, so people are inserted with one fast executemany.

    `INSERT … RETURNING` in parameter order degrades to one statement per row on SQLite.
    """
    if conn.dialect.name == "postgresql":
        query = sa.text("SELECT nextval(pg_get_serial_sequence('people', 'id')) FROM generate_series(1, :n)")
        return [int(v) for v in conn.execute(query, {"n": count}).scalars()]
    # SQLite: every write transaction holds the database lock (BEGIN IMMEDIATE), so max(id) is ours.
    start = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(people.c.id), 0))) or 0)
    return list(range(start + 1, start + 1 + count))


def _undamaged(incoming: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Leave out a name that only repeats the person's own with letters lost to an export's encoding."""
    damaged = [n for n in ("first_name", "last_name") if is_damaged_spelling(incoming.get(n), current.get(n))]
    return {k: v for k, v in incoming.items() if k not in damaged} if damaged else incoming


class Resolver:
    """Resolves records in order within one transaction; call flush() to write what is pending."""

    def __init__(
        self,
        conn: sa.Connection,
        now: dt.datetime,
        *,
        secret: str,
        source: str,
        actor: str,
        batch_id: int | None = None,
        file_name: str | None = None,
        journaled: set[int] | None = None,
    ) -> None:
        self.conn, self.now, self.secret = conn, now, secret
        self.source, self.actor, self.batch_id, self.file_name = source, actor, batch_id, file_name
        self.counts: Counter[str] = Counter()
        # People whose before-state this batch already journaled (carried from chunk to chunk).
        self.journaled: set[int] = journaled if journaled is not None else set()
        self._temp_map: dict[int, int] = {}
        self._next_temp = -1
        self._reset()

    def _reset(self) -> None:
        self._key_owner: dict[tuple[str, str], int] = {}  # (kind, key) → person id (negative = pending)
        self._pending: dict[int, _Pending] = {}
        self._existing: dict[int, Any] = {}  # person rows loaded for this chunk
        self._changes: dict[int, dict[str, Any]] = {}
        self._new_idents: list[tuple[int, Identifier]] = []
        self._sources: list[tuple[int, int, dict[str, str]]] = []
        self._events: list[tuple[int, str, str]] = []  # (person, 'channel:purpose', kind)
        self._suggestions: list[tuple[int, int, Evidence]] = []
        self._suppress: set[int] = set()
        self._alias: dict[int, int] = {}  # merged (this chunk) → survivor
        self._merges: list[tuple[int, int, str]] = []

    # -- resolution -----------------------------------------------------------------------------

    def resolve(self, records: list[Incoming]) -> list[Outcome]:
        """Resolve a chunk of records and write them; returns one outcome per record, in order."""
        self._prefetch(records)
        outcomes: list[Outcome] = []
        for record in records:
            outcomes.append(self._resolve_one(record))
        self.flush()
        for outcome in outcomes:
            outcome.person_id = self._temp_map.get(outcome.person_id, outcome.person_id)
        return outcomes

    def _prefetch(self, records: list[Incoming]) -> None:
        keys = {(i.kind, i.key) for r in records for i in r.identifiers}
        self._key_owner.update(lookup_keys(self.conn, keys))
        self._existing.update(people_by_id(self.conn, {pid for pid in self._key_owner.values() if pid > 0}))
        self._tombstoned_keys: set[tuple[str, str]] = set()
        # Keyed hashing costs as much as the lookup itself; skip both until someone was erased.
        if self.conn.scalar(sa.select(sa.exists().select_from(tombstones))):
            hashes = {tombstone_hash(self.secret, k, key): (k, key) for k, key in keys}
            self._tombstoned_keys = {hashes[h] for h in tombstoned(self.conn, hashes)}

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

    def _resolve_one(self, record: Incoming) -> Outcome:
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
        self._pending[temp] = _Pending(temp_id=temp, fields=fields)
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

    # -- writing --------------------------------------------------------------------------------

    def _journal(self, pids: list[int]) -> None:
        """Keep the before-state of existing people this batch touches, once, for import-undo."""
        if self.batch_id is None:
            return
        fresh = [p for p in dict.fromkeys(pids) if p > 0 and p not in self.journaled]
        if not fresh:
            return
        # Rows loaded for this chunk still hold the stored state: journaling runs before any write.
        rows = {p: self._existing[p] for p in fresh if p in self._existing}
        rows.update(people_by_id(self.conn, [p for p in fresh if p not in rows]))
        created_here = {p for p, r in rows.items() if r["created_batch_id"] == self.batch_id}
        values = [
            {"batch_id": self.batch_id, "person_id": p, "before": person_fields(rows[p])}
            for p in fresh
            if p not in created_here
        ]
        if values:
            self.conn.execute(batch_changes.insert(), values)
        self.journaled.update(fresh)

    def flush(self) -> dict[int, int]:
        """Write pending people, identifiers, updates, sources, consent and suggestions; map temp → real ids."""
        mapping = self._insert_people()

        def real(pid: int) -> int:
            return mapping.get(pid, pid)

        merged_people = [p for pair in self._merges for p in pair[:2]]
        self._journal([*self._changes, *merged_people, *(p for p, _ in self._new_idents if p > 0)])
        self._write_changes()
        bulk_insert(
            self.conn,
            identifiers,
            ("person_id", "kind", "value", "key", "batch_id", "created_at"),
            [(real(p), i.kind, i.value[:320], i.key, self.batch_id, self.now) for p, i in self._new_idents],
        )
        bulk_insert(
            self.conn,
            source_records,
            ("batch_id", "person_id", "file_name", "row_number", "raw", "created_at"),
            [(self.batch_id, real(p), self.file_name or "", n, raw, self.now) for p, n, raw in self._sources],
        )
        self._write_consent(real)
        self._write_suggestions(real)
        for survivor, other, reason in self._merges:
            merge_people(
                self.conn, survivor, other, actor=self.actor, reason=reason, now=self.now, batch_id=self.batch_id
            )
        self._reset_chunk_state()
        return mapping

    def _write_changes(self) -> None:
        """Update changed people with one executemany per set of changed columns."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for pid, values in self._changes.items():
            groups.setdefault(tuple(sorted(values)), []).append({**values, "_pid": pid})
        for columns, rows in groups.items():
            stmt = (
                people.update()
                .where(people.c.id == sa.bindparam("_pid"))
                .values({c: sa.bindparam(c) for c in columns} | {"updated_at": self.now})
            )
            self.conn.execute(stmt, rows)

    def _reset_chunk_state(self) -> None:
        existing, owners = self._existing, self._key_owner
        stale = {p for survivor, other, _ in self._merges for p in (survivor, other)}
        if stale:
            # Rows and keys of merged people changed in the database: look them up again if needed.
            for pid in stale:
                existing.pop(pid, None)
            owners = {k: v for k, v in owners.items() if v not in stale}
        self._reset()
        # Keys and rows already resolved stay valid for the rest of the chunk; pending ones are real now.
        self._existing = existing
        self._key_owner = {k: v for k, v in owners.items() if v > 0}

    def _insert_people(self) -> dict[int, int]:
        if not self._pending:
            return {}
        temps = list(self._pending)
        values = [
            {
                **self._pending[t].fields,
                "status": "active",
                "created_batch_id": self.batch_id,
                "created_at": self.now,
                "updated_at": self.now,
            }
            for t in temps
        ]
        ids = allocate_person_ids(self.conn, len(values))
        for row, pid in zip(values, ids, strict=True):
            row["id"] = pid
        columns = tuple(values[0])
        bulk_insert(self.conn, people, columns, [tuple(row[c] for c in columns) for row in values])
        mapping = dict(zip(temps, ids, strict=True))
        self._temp_map.update(mapping)
        for (kind, key), owner in list(self._key_owner.items()):
            if owner in mapping:
                self._key_owner[(kind, key)] = mapping[owner]
        for row, pid in zip(values, ids, strict=True):
            self._existing[pid] = {**row, "id": pid, "merged_into_id": None}
        self._suppress = {mapping.get(p, p) for p in self._suppress}
        return mapping

    def _write_consent(self, real: Any) -> None:
        wanted = [(real(p), c, k) for p, c, k in self._events]
        pids = {p for p, _, _ in wanted} | {real(p) for p in self._suppress}
        current = load_events(self.conn, pids) if pids else {}
        rows = []
        for pid, target, kind in dict.fromkeys(wanted):
            channel, _, purpose = target.partition(":")
            state, _ = consent_state(current.get(pid, []), channel, purpose)
            if state == kind:
                continue
            if kind == "subscribed" and state in OPT_OUTS:
                self.counts["opt_out_kept"] += 1  # an import never re-subscribes (consent/policy.py)
                continue
            rows.append(self._event(pid, channel, purpose, kind, self.source))
        for pid in {real(p) for p in self._suppress}:
            rows.extend(self._event(pid, ch, ALL_PURPOSES, "suppressed", "erasure_tombstone") for ch in CHANNELS)
            self.counts["suppressed"] += 1
        if rows:
            self.conn.execute(consent_events.insert(), rows)

    def _event(self, pid: int, channel: str, purpose: str, kind: str, source: str) -> dict[str, object]:
        return event_row(pid, channel, purpose, kind, source=source, now=self.now, batch_id=self.batch_id)

    def _write_suggestions(self, real: Any) -> None:
        pairs: dict[tuple[int, int], list[Evidence]] = {}
        for a, b, why in self._suggestions:
            a, b = real(self._owner(a)), real(self._owner(b))
            evidence = pairs.setdefault((min(a, b), max(a, b)), [])
            if why not in evidence:
                evidence.append(why)
        for (a, b), evidence in pairs.items():
            if store_suggestion(self.conn, a, b, evidence, now=self.now, batch_id=self.batch_id):
                self.counts["suggested"] += 1


__all__ = ["EMAIL", "HANDLE", "PHONE", "Incoming", "Outcome", "Resolver"]
