"""Wire marks: what a worker appends before each final dot, and how another worker reads it."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

from herald.delivery.wire_marks import MarksReader, WireMarks, prune, worker_dir

HOST = socket.gethostname()
NOW = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)


def test_a_mark_is_found_only_for_its_own_reference_and_worker(tmp_path: Path) -> None:
    worker = f"{HOST}:{os.getpid()}:aaaaaa"
    marks = WireMarks(tmp_path, worker)
    marks.before_final_dot("hm1-1-0badc0de")
    reader = MarksReader(tmp_path)
    assert reader.verdict(worker, "hm1-1-0badc0de") == "marked"
    assert reader.verdict(worker, "hm1-1-0badc0d") == "unmarked"  # a prefix is not a mark
    assert reader.verdict(worker, "m1-1-0badc0de") == "unmarked"  # nor a suffix
    assert reader.verdict(f"{HOST}:{os.getpid()}:bbbbbb", "hm1-1-0badc0de") == "unreadable"  # no such directory
    assert reader.verdict(f"elsewhere:{os.getpid()}:aaaaaa", "hm1-1-0badc0de") == "unreadable"  # another host
    assert reader.verdict(None, "hm1-1-0badc0de") == "unreadable"  # an attempt from before wire marks
    marks.before_final_dot("hm2-1-00000000")  # the reader's cache notices the file grew
    assert reader.verdict(worker, "hm2-1-00000000") == "marked"
    marks.close()


def test_a_worker_that_never_marked_leaves_a_readable_empty_file(tmp_path: Path) -> None:
    worker = f"{HOST}:1:cccccc"
    WireMarks(tmp_path, worker).close()
    assert MarksReader(tmp_path).verdict(worker, "hm1-1-0badc0de") == "unmarked"


def test_a_mark_survives_its_process_being_killed_right_after_the_write(tmp_path: Path) -> None:
    worker = f"{HOST}:2:dddddd"
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from herald.delivery.wire_marks import WireMarks\n"
        f"WireMarks(Path(sys.argv[1]), {worker!r}).before_final_dot('hm9-1-12345678')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False)
    assert done.returncode == -9
    assert MarksReader(tmp_path).verdict(worker, "hm9-1-12345678") == "marked"


def test_segments_rotate_and_every_segment_is_read(tmp_path: Path) -> None:
    worker = f"{HOST}:3:eeeeee"
    marks = WireMarks(tmp_path, worker, segment_bytes=40)
    references = [f"hm{i}-1-{i:08x}" for i in range(10)]
    for reference in references:
        marks.before_final_dot(reference)
    marks.close()
    assert len(list(worker_dir(tmp_path, worker).glob("*.marks"))) > 3
    reader = MarksReader(tmp_path)
    assert all(reader.verdict(worker, r) == "marked" for r in references)
    again = WireMarks(tmp_path, worker, segment_bytes=40)  # a restart with the same id appends, never truncates
    again.close()
    assert all(reader.verdict(worker, r) == "marked" for r in references)


def test_prune_deletes_old_segments_of_stopped_workers_only(tmp_path: Path) -> None:
    dead = f"{HOST}:999999999:ffffff"  # no such pid
    alive = f"{HOST}:{os.getpid()}:111111"
    for worker in (dead, alive):
        marks = WireMarks(tmp_path, worker)
        marks.before_final_dot("hm1-1-00000001")
        marks.close()
    old = (NOW - dt.timedelta(days=3)).timestamp()
    for path in tmp_path.glob("*/*.marks"):
        os.utime(path, (old, old))
    assert prune(tmp_path, older_than=dt.timedelta(hours=24), now=NOW) == 1
    assert not worker_dir(tmp_path, dead).exists()  # its directory went with its last segment
    assert MarksReader(tmp_path).verdict(alive, "hm1-1-00000001") == "marked"  # a live worker's open segment stays
    assert MarksReader(tmp_path).verdict(dead, "hm1-1-00000001") == "unreadable"  # settled unconfirmed, never doubled


def test_mark_then_write_marks_before_the_bytes_go_and_the_file_holds_only_marks(tmp_path: Path) -> None:
    worker = f"{HOST}:{os.getpid()}:121212"
    marks = WireMarks(tmp_path, worker)
    left, right = socket.socketpair()
    with left, right:
        assert marks.mark_then_write("hm7-1-00000007", left.fileno(), b".\r\n") == 3
        assert right.recv(16) == b".\r\n"
    [segment] = worker_dir(tmp_path, worker).glob("*.marks")
    assert segment.stat().st_size == 256 * 1024  # allocated up front: a full disk fails before a send
    assert MarksReader(tmp_path).verdict(worker, "hm7-1-00000007") == "marked"
    marks.close()


def test_a_live_workers_file_is_read_afresh_and_a_stopped_ones_once(tmp_path: Path) -> None:
    live = f"{HOST}:{os.getpid()}:343434"
    stopped = f"{HOST}:999999998:565656"
    reader = MarksReader(tmp_path)
    marks, old = WireMarks(tmp_path, live), WireMarks(tmp_path, stopped)
    old.before_final_dot("hm1-1-00000001")
    old.close()
    assert reader.verdict(live, "hm2-1-00000002") == "unmarked"
    marks.before_final_dot("hm2-1-00000002")  # same size, maybe the same mtime: must still be seen
    assert reader.verdict(live, "hm2-1-00000002") == "marked"
    assert reader.verdict(stopped, "hm1-1-00000001") == "marked"
    assert list(reader._cache) == list(worker_dir(tmp_path, stopped).glob("*.marks"))
    marks.close()
