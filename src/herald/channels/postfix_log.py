"""Did a local postfix accept a Message-ID? Read its mail log (cleanup + qmgr lines) incrementally to answer."""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

Acceptance = Literal["accepted", "not_accepted", "unknown"]

# `QUEUEID: message-id=<…>` is logged by cleanup while the message is being received; the qmgr line
# `QUEUEID: from=<…>, size=…, nrcpt=N (queue active)` only once the message is committed to the queue,
# i.e. after postfix answered (or would have answered) 250 to the final dot. A client that vanished before
# the dot leaves the cleanup line and nothing else.
_LINE = re.compile(
    rb"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?) \S+ \S*/"
    rb"(?:cleanup\[\d+\]: (?P<cq>[0-9A-Za-z]+): message-id=(?P<mid>\S*)"
    rb"|qmgr\[\d+\]: (?P<aq>[0-9A-Za-z]+): from=<[^\n]*?, nrcpt=\d+ \(queue active\))",
    re.MULTILINE,
)
_TIMESTAMP = re.compile(rb"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?) ")
_MONTHS = {m: i for i, m in enumerate(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
_CHUNK = 16 << 20
_PROBE = 8192  # bytes read at a probe point while bisecting the file by time
_SLACK = dt.timedelta(minutes=2)  # log lines are only roughly in time order (several writers)


class LogUnavailable(Exception):
    """The log cannot be read: the answer is unknown, not "not accepted"."""


def parse_timestamp(raw: bytes, now: dt.datetime) -> dt.datetime:
    """A syslog `Nov 22 19:55:54` (local time, no year: the latest such instant not after `now` + 1 day)
    or an RFC 3339 timestamp, as an aware UTC datetime."""
    if raw[:1].isdigit():
        parsed = dt.datetime.fromisoformat(raw.decode("ascii"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=now.astimezone().tzinfo)
    month, day, clock = _MONTHS[raw[:3]], int(raw[4:6]), raw[7:15].decode("ascii")
    zone = now.astimezone().tzinfo  # the system's zone, which is what the log is written in
    hour, minute, second = (int(x) for x in clock.split(":"))
    year = now.year
    stamp = dt.datetime(year, month, day, hour, minute, second, tzinfo=zone)
    if stamp > now + dt.timedelta(days=1):
        stamp = stamp.replace(year=year - 1)
    return stamp.astimezone(dt.UTC)


@dataclass
class _Position:
    inode: int
    offset: int  # the next unread byte (always at a line start)
    covered_from: dt.datetime  # every acceptance logged at or after this instant is in the index


class PostfixLog:
    """An incremental index of a postfix mail log: Message-ID → accepted, read from a remembered offset.

    The index is a cache; the file is the truth. A lookup about an instant older than what the index covers
    (or after rotation) re-reads the file from that instant, found by bisecting the file on its timestamps,
    so neither the first lookup nor a long-running worker reads the whole log.
    """

    def __init__(self, path: Path, *, settle: dt.timedelta, horizon: dt.timedelta = dt.timedelta(minutes=30)) -> None:
        self.path = path
        self.settle = settle
        self.horizon = horizon
        self._lock = threading.Lock()
        self._position: _Position | None = None
        self._queued: dict[bytes, bytes] = {}  # queue id → message-id, cleanup seen, commit not (yet) seen
        self._accepted: dict[bytes, dt.datetime] = {}  # message-id → when committed; insertion ordered
        self._stamps: dict[bytes, dt.datetime] = {}
        self.bytes_read = 0

    def lookup(self, message_id: str, *, since: dt.datetime, sent_by: dt.datetime, now: dt.datetime) -> Acceptance:
        """accepted: committed to postfix's queue since `since`. not_accepted: not committed, and everything
        our sender can have written was written by `sent_by`, at least `settle` ago. unknown: too early to say.

        Raises LogUnavailable when the log cannot be read.
        """
        with self._lock:
            self._refresh(since, now)
            if message_id.encode() in self._accepted:
                return "accepted"
        return "not_accepted" if now >= sent_by + self.settle else "unknown"

    # --- reading ---------------------------------------------------------------------------------------

    def _refresh(self, since: dt.datetime, now: dt.datetime) -> None:
        try:
            with self.path.open("rb") as handle:
                inode, size = os.fstat(handle.fileno()).st_ino, os.fstat(handle.fileno()).st_size
                position = self._position
                if (
                    position is None
                    or position.inode != inode
                    or position.offset > size
                    or since < position.covered_from
                ):
                    position = self._restart(handle, inode, size, since, now)
                position.offset = self._read(handle, position.offset, size, now)
                self._position = position
        except OSError as exc:
            raise LogUnavailable(f"cannot read {self.path}: {exc}") from exc
        self._prune(now)

    def _restart(self, handle: BinaryIO, inode: int, size: int, since: dt.datetime, now: dt.datetime) -> _Position:
        self._queued.clear()
        self._accepted.clear()
        start = self._offset_before(handle, size, since - _SLACK, now)
        return _Position(inode=inode, offset=start, covered_from=since)

    def _offset_before(self, handle: BinaryIO, size: int, instant: dt.datetime, now: dt.datetime) -> int:
        """A line start whose line is older than `instant` (or 0): bisect on the timestamps of probe points."""
        low, high = 0, size
        while high - low > _PROBE:
            middle = (low + high) // 2
            found = self._line_at(handle, middle, now)
            if found is None:
                high = middle
                continue
            offset, stamp = found
            if stamp < instant:
                low = offset
            else:
                high = middle
        return low

    def _line_at(self, handle: BinaryIO, offset: int, now: dt.datetime) -> tuple[int, dt.datetime] | None:
        handle.seek(offset)
        chunk: bytes = handle.read(_PROBE)
        self.bytes_read += len(chunk)
        start = chunk.find(b"\n") + 1 if offset else 0
        for line in chunk[start:].split(b"\n")[:-1]:
            match = _TIMESTAMP.match(line)
            if match:
                return offset + start, self._stamp(match.group(1), now)
            start += len(line) + 1
        return None

    def _read(self, handle: BinaryIO, offset: int, size: int, now: dt.datetime) -> int:
        while offset < size:
            handle.seek(offset)
            data = handle.read(min(size - offset, _CHUNK))
            self.bytes_read += len(data)
            end = data.rfind(b"\n") + 1  # a partly written last line is read next time
            if end == 0:
                break
            self._index(data, end, now)
            offset += end
        return offset

    def _index(self, data: bytes, end: int, now: dt.datetime) -> None:
        for match in _LINE.finditer(data, 0, end):
            queue_id = match.group("cq")
            if queue_id is not None:
                self._queued[queue_id] = match.group("mid")
                continue
            message_id = self._queued.pop(match.group("aq"), None)
            if message_id is not None:
                self._accepted[message_id] = self._stamp(match.group("ts"), now)

    def _stamp(self, raw: bytes, now: dt.datetime) -> dt.datetime:
        stamp = self._stamps.get(raw)
        if stamp is None:
            if len(self._stamps) > 4096:
                self._stamps.clear()
            stamp = self._stamps[raw] = parse_timestamp(raw, now)
        return stamp

    def _prune(self, now: dt.datetime) -> None:
        """Forget acceptances older than the horizon (a lookup that old re-reads the file instead)."""
        position = self._position
        if position is None or len(self._accepted) < 50_000:
            return
        cutoff = now - self.horizon
        for message_id, stamp in list(self._accepted.items()):
            if stamp >= cutoff:
                break
            del self._accepted[message_id]
        if len(self._queued) > 100_000:
            # The oldest receptions without a commit: clients that vanished before the dot, long ago.
            for queue_id in list(self._queued)[:50_000]:
                del self._queued[queue_id]
        position.covered_from = max(position.covered_from, cutoff + _SLACK)
