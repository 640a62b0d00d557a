"""Wire marks: per worker, an append-only file naming each attempt whose final "." was about to be written."""

from __future__ import annotations

import contextlib
import datetime as dt
import mmap
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Why a mapped file and no fsync: a store into a shared file mapping lands in the page cache, which the kernel
# writes out whatever happens to the process; only a machine crash could lose it, and then the worker's relay
# connection died with the machine too. Why a mapping rather than write(): the mark is then a memory copy, not a
# system call, so the gap between the mark and the dot's own write() — where a kill would leave a marked
# message that never left — is a few interpreter steps (docs/delivery.md). Missing or unreadable marks are
# treated as "it may have left".
SEGMENT_BYTES = 256 * 1024  # allocated up front (≈ 12,000 marks); a new segment when full
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

Verdict = Literal["marked", "unmarked", "unreadable"]


def marks_root(data_dir: Path, configured: str = "") -> Path:
    """HERALD_WIRE_MARKS_DIR, else `<data dir>/marks`."""
    return Path(configured) if configured else data_dir / "marks"


def worker_host(worker_id: str) -> str:
    """The host part of a worker id (`host:pid:random`, delivery/worker.py)."""
    return worker_id.partition(":")[0]


def worker_dir(root: Path, worker_id: str) -> Path:
    return root / _UNSAFE.sub("_", worker_id)


class WireMarks:
    """This worker's marks: segments of zero-filled, pre-allocated files mapped into memory, one
    `<reference>\n` line per attempt whose final dot is about to be written (`before_final_dot`), or is
    written right after the mark by the same call (`mark_then_write`)."""

    def __init__(
        self,
        root: Path,
        worker_id: str,
        *,
        segment_bytes: int = SEGMENT_BYTES,
        keep: dt.timedelta | None = None,
        now: dt.datetime | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.dir = worker_dir(root, worker_id)
        # Made before this worker claims anything: a worker that died before its first mark leaves a readable,
        # empty directory (its attempts are safely re-sent), not a missing one (which counts as unreadable).
        self.dir.mkdir(parents=True, exist_ok=True)
        self._segment_bytes = segment_bytes
        self._number = max((_segment_number(p) for p in self.dir.glob("*.marks")), default=0)
        self._map: mmap.mmap | None = None
        self._pos = 0
        self._open_next()
        if keep is not None and now is not None:
            prune(root, older_than=keep, now=now, keep_worker=worker_id)

    def before_final_dot(self, reference: str) -> None:
        self._mark(reference.encode("ascii") + b"\n")

    def mark_then_write(self, reference: str, fd: int, data: bytes) -> int:
        """Mark, then `os.write(fd, data)` at once; returns what os.write wrote (it may raise OSError)."""
        self._mark(reference.encode("ascii") + b"\n")
        return os.write(fd, data)

    def _mark(self, line: bytes) -> None:
        end = self._pos + len(line)
        if end > self._segment_bytes:
            if len(line) > self._segment_bytes:
                raise OSError(f"a wire mark of {len(line)} bytes does not fit a segment")
            self._open_next()
            end = len(line)
        assert self._map is not None
        self._map[self._pos : end] = line
        self._pos = end

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None

    def _open_next(self) -> None:
        """A new segment, allocated and mapped before any mark goes into it: a full disk fails here, before
        a send, never as a lost page later (or a SIGBUS on a sparse file)."""
        self.close()
        self._number += 1
        path = self.dir / f"{self._number:06d}.marks"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, self._segment_bytes)
            # MAP_POPULATE: the pages are faulted in now, not on the first mark of each page.
            self._map = mmap.mmap(fd, self._segment_bytes, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        finally:
            os.close(fd)  # the mapping keeps the file
        self._pos = 0


@dataclass
class MarksReader:
    """Answers "did this worker mark this reference?" for attempts a dead worker left `submitting`.

    Only a worker of this host can be asked (its marks are local files); any doubt — another host, a missing
    directory, a read error — is `unreadable`, which the caller treats like a mark (never a duplicate).
    A stopped worker's segments are cached, so a batch of one dead worker's attempts reads its files once.
    """

    root: Path
    host: str = field(default_factory=socket.gethostname)
    _cache: dict[Path, bytes] = field(default_factory=dict)

    def verdict(self, worker_id: str | None, reference: str) -> Verdict:
        if not worker_id or worker_host(worker_id) != self.host:
            return "unreadable"
        folder = worker_dir(self.root, worker_id)
        needle = b"\n" + reference.encode("ascii") + b"\n"
        try:
            if not folder.is_dir():
                return "unreadable"
            for path in sorted(folder.glob("*.marks")):
                if needle in b"\n" + self._read(path):
                    return "marked"
        except OSError:
            return "unreadable"
        return "unmarked"

    def _read(self, path: Path) -> bytes:
        """The segment's marks (the zero fill cut off). A live worker's file is read afresh every time: its
        mapped writes need not change the file's mtime. A stopped worker's file no longer changes: cached."""
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        data = path.read_bytes()
        end = data.find(b"\0")
        marks = data if end < 0 else data[:end]
        if not _may_be_running(path.parent.name):
            self._cache[path] = marks
        return marks


def prune(root: Path, *, older_than: dt.timedelta, now: dt.datetime, keep_worker: str | None = None) -> int:
    """Delete segments last written before `now - older_than` (their attempts settled long ago: a worker's
    writes end with its lease) and the directories they leave empty; returns the segments removed.
    A pruned worker's unsettled attempt, if any, reads as `unreadable`: settled unconfirmed, never doubled."""
    cutoff = (now - older_than).timestamp()
    own = worker_dir(root, keep_worker) if keep_worker else None
    removed = 0
    if not root.is_dir():
        return 0
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        segments = sorted(folder.glob("*.marks"))
        for path in segments:
            if path == segments[-1] and (folder == own or _may_be_running(folder.name)):
                continue  # a live worker's open segment, however long it has been idle
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        if folder != own:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds once it is empty
    return removed


def _may_be_running(folder_name: str) -> bool:
    """Whether the worker a directory belongs to may still be running (its pid exists on this host)."""
    parts = folder_name.rsplit("_", 2)  # host_pid_random, as worker_dir wrote host:pid:random
    if len(parts) != 3 or not parts[1].isdecimal():
        return True  # not a worker id we can read: keep its open segment
    if parts[0] != _UNSAFE.sub("_", socket.gethostname()):
        return True  # another host's worker (a shared directory): it may be running
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, under another user
    return True


def _segment_number(path: Path) -> int:
    try:
        return int(path.stem)
    except ValueError:
        return 0
