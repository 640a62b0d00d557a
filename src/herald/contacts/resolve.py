"""Resolve incoming contact records to people: prefetch what the matcher needs, then write its decisions in bulk."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from herald.consent.ledger import event_row, load_events, record_events
from herald.consent.policy import ALL_PURPOSES, CHANNELS, OPT_OUTS, consent_state
from herald.contacts.dedupe import store_suggestions
from herald.contacts.evidence import Evidence
from herald.contacts.matching import Incoming, Matcher, Outcome
from herald.contacts.merge import merge_all
from herald.contacts.store import lookup_keys, people_for_matching, tombstone_hash, tombstoned
from herald.contacts.survivorship import person_fields
from herald.db.bulk import bulk_insert
from herald.db.contacts_tables import batch_changes, identifiers, people, source_records, tombstones


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


class Resolver(Matcher):
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
        super().__init__(source=source, batch_id=batch_id)
        self.conn, self.now, self.secret = conn, now, secret
        self.actor, self.file_name = actor, file_name
        # People whose before-state this batch already journaled (carried from chunk to chunk).
        self.journaled: set[int] = journaled if journaled is not None else set()
        self._temp_map: dict[int, int] = {}

    # -- resolution -----------------------------------------------------------------------------

    def resolve(self, records: list[Incoming]) -> list[Outcome]:
        """Resolve a chunk of records and write them; returns one outcome per record, in order."""
        self._prefetch(records)
        outcomes: list[Outcome] = []
        for record in records:
            outcomes.append(self.match(record))
        self.flush()
        for outcome in outcomes:
            outcome.person_id = self._temp_map.get(outcome.person_id, outcome.person_id)
        return outcomes

    def _prefetch(self, records: list[Incoming]) -> None:
        keys = {(i.kind, i.key) for r in records for i in r.identifiers}
        owners = lookup_keys(self.conn, keys)
        known = {pid for pid in (*self._key_owner.values(), *owners.values()) if pid > 0}
        rows = people_for_matching(self.conn, known)  # reloaded: earlier chunks may have changed them
        erased: set[tuple[str, str]] = set()
        # Keyed hashing costs as much as the lookup itself; skip both until someone was erased.
        if self.conn.scalar(sa.select(sa.exists().select_from(tombstones))):
            hashes = {tombstone_hash(self.secret, k, key): (k, key) for k, key in keys}
            erased = {hashes[h] for h in tombstoned(self.conn, hashes)}
        self.know(owners, rows, erased)

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
        rows.update(people_for_matching(self.conn, [p for p in fresh if p not in rows]))
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
        merge_all(self.conn, self._merges, actor=self.actor, now=self.now, batch_id=self.batch_id)
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
            record_events(self.conn, rows)

    def _event(self, pid: int, channel: str, purpose: str, kind: str, source: str) -> dict[str, object]:
        return event_row(pid, channel, purpose, kind, source=source, now=self.now, batch_id=self.batch_id)

    def _write_suggestions(self, real: Any) -> None:
        pairs: dict[tuple[int, int], list[Evidence]] = {}
        for a, b, why in self._suggestions:
            a, b = real(self._owner(a)), real(self._owner(b))
            evidence = pairs.setdefault((min(a, b), max(a, b)), [])
            if why not in evidence:
                evidence.append(why)
        self.counts["suggested"] += store_suggestions(self.conn, pairs, now=self.now, batch_id=self.batch_id)


__all__ = ["Incoming", "Outcome", "Resolver"]
