"""The postfix mail-log reconciler against a recorded excerpt: committed, died before the dot, never seen."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herald.channels.postfix_log import LogUnavailable, PostfixLog, parse_timestamp

# Recorded from the CI postfix (maillog_file = /var/log/postfix.log): the first client wrote DATA and vanished
# before the final dot; the second wrote the dot and closed without reading the reply.
EXCERPT = """\
Nov 22 19:56:24 vm postfix/qmgr[25690]: 81E6216A3A4: removed
Nov 22 19:56:53 vm postfix/smtpd[20951]: connect from localhost[127.0.0.1]
Nov 22 19:56:53 vm postfix/smtpd[20951]: 0F2C916A39E: client=localhost[127.0.0.1]
Nov 22 19:56:53 vm postfix/smtpd[20951]: lost connection after DATA (66 bytes) from localhost[127.0.0.1]
Nov 22 19:56:53 vm postfix/smtpd[20951]: disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4
Nov 22 19:56:53 vm postfix/cleanup[26095]: 0F2C916A39E: message-id=<probe-2bb1343a-nodot@localhost>
Nov 22 19:56:53 vm postfix/smtpd[22452]: connect from localhost[127.0.0.1]
Nov 22 19:56:53 vm postfix/smtpd[22452]: 5950116A39E: client=localhost[127.0.0.1]
Nov 22 19:56:53 vm postfix/cleanup[25560]: 5950116A39E: message-id=<probe-2bb1343a-dot@localhost>
Nov 22 19:56:53 vm postfix/qmgr[25690]: 5950116A39E: from=<herald@localhost>, size=285, nrcpt=1 (queue active)
Nov 22 19:56:53 vm postfix/smtpd[22452]: disconnect from localhost[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 commands=4
Nov 22 19:56:53 vm postfix/local[25198]: 5950116A39E: to=<root@localhost>, relay=local, delay=0.01, \
delays=0.01/0/0/0, dsn=2.0.0, status=sent (delivered to mailbox)
Nov 22 19:56:53 vm postfix/qmgr[25690]: 5950116A39E: removed
"""
SENT = dt.datetime(2026, 11, 22, 19, 56, 53, tzinfo=dt.UTC)
SETTLE = dt.timedelta(seconds=5)
LATER = SENT + dt.timedelta(seconds=6)


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Syslog timestamps are in the system's zone; the recording was made on a UTC machine.
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _log(tmp_path: Path, text: str = EXCERPT) -> tuple[Path, PostfixLog]:
    path = tmp_path / "postfix.log"
    path.write_text(text)
    return path, PostfixLog(path, settle=SETTLE)


def _ask(log: PostfixLog, message_id: str, now: dt.datetime = LATER) -> str:
    return log.lookup(message_id, since=SENT - dt.timedelta(seconds=1), sent_by=SENT, now=now)


def test_a_committed_message_is_accepted(tmp_path: Path) -> None:
    _, log = _log(tmp_path)
    assert _ask(log, "<probe-2bb1343a-dot@localhost>") == "accepted"
    assert _ask(log, "<probe-2bb1343a-dot@localhost>", now=SENT) == "accepted"


def test_a_client_that_died_before_the_dot_was_not_accepted_once_settled(tmp_path: Path) -> None:
    _, log = _log(tmp_path)
    assert _ask(log, "<probe-2bb1343a-nodot@localhost>", now=SENT + dt.timedelta(seconds=4)) == "unknown"
    assert _ask(log, "<probe-2bb1343a-nodot@localhost>") == "not_accepted"


def test_a_message_never_seen_is_unknown_until_settled(tmp_path: Path) -> None:
    _, log = _log(tmp_path)
    assert _ask(log, "<hm1-1-00000000@localhost>", now=SENT) == "unknown"
    assert _ask(log, "<hm1-1-00000000@localhost>") == "not_accepted"


def test_lines_appended_later_are_read_from_the_remembered_offset(tmp_path: Path) -> None:
    path, log = _log(tmp_path)
    assert _ask(log, "<late@localhost>", now=SENT) == "unknown"
    first = log.bytes_read
    with path.open("a") as out:
        out.write("Nov 22 19:56:54 vm postfix/cleanup[1]: AAAA1: message-id=<late@localhost>\n")
        out.write("Nov 22 19:56:54 vm postfix/qmgr[2]: AAAA1: from=<a@b>, size=1, nrcpt=1 (queue ")  # half written
    assert _ask(log, "<late@localhost>", now=SENT) == "unknown"
    with path.open("a") as out:
        out.write("active)\n")
    assert _ask(log, "<late@localhost>") == "accepted"
    assert log.bytes_read - first < len(EXCERPT)  # only the new lines (one twice), not the file again


def test_a_reused_queue_id_belongs_to_its_latest_message(tmp_path: Path) -> None:
    text = (
        "Nov 22 19:56:53 vm postfix/cleanup[1]: BEEF1: message-id=<first@x>\n"
        "Nov 22 19:56:53 vm postfix/cleanup[1]: BEEF1: message-id=<second@x>\n"
        "Nov 22 19:56:53 vm postfix/qmgr[2]: BEEF1: from=<a@b>, size=9, nrcpt=1 (queue active)\n"
    )
    _, log = _log(tmp_path, text)
    assert _ask(log, "<second@x>") == "accepted"
    assert _ask(log, "<first@x>") == "not_accepted"


def test_a_long_log_is_bisected_by_time_not_read_whole(tmp_path: Path) -> None:
    old = SENT - dt.timedelta(hours=3)
    filler = []
    for i in range(30_000):
        stamp = (old + dt.timedelta(seconds=i // 100)).strftime("%b %d %H:%M:%S")
        filler.append(f"{stamp} vm postfix/cleanup[1]: Q{i:06d}: message-id=<old{i}@x>")
        filler.append(f"{stamp} vm postfix/qmgr[2]: Q{i:06d}: from=<a@b>, size=9, nrcpt=1 (queue active)")
    path, log = _log(tmp_path, "\n".join(filler) + "\n" + EXCERPT)
    assert _ask(log, "<probe-2bb1343a-dot@localhost>") == "accepted"
    assert log.bytes_read < path.stat().st_size / 10
    assert _ask(log, "<old5@x>") == "not_accepted"  # outside the window asked about: not indexed
    earlier = log.lookup("<old5@x>", since=old, sent_by=old, now=LATER)  # an older question re-reads
    assert earlier == "accepted"


def test_a_rotated_log_is_read_from_its_start(tmp_path: Path) -> None:
    path, log = _log(tmp_path)
    assert _ask(log, "<probe-2bb1343a-dot@localhost>") == "accepted"
    rotated = tmp_path / "postfix.log.new"
    rotated.write_text(
        "Nov 22 19:56:55 vm postfix/cleanup[1]: CAFE1: message-id=<after@x>\n"
        "Nov 22 19:56:55 vm postfix/qmgr[2]: CAFE1: from=<a@b>, size=9, nrcpt=1 (queue active)\n"
    )
    rotated.replace(path)
    assert _ask(log, "<after@x>") == "accepted"


def test_an_unreadable_log_is_an_error_not_an_answer(tmp_path: Path) -> None:
    log = PostfixLog(tmp_path / "missing.log", settle=SETTLE)
    with pytest.raises(LogUnavailable):
        _ask(log, "<x@y>")


def test_syslog_timestamps_take_the_year_of_now_except_across_new_year() -> None:
    now = dt.datetime(2027, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    assert parse_timestamp(b"Dec 31 23:59:59", now) == dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert parse_timestamp(b"Jan  1 00:00:01", now) == dt.datetime(2027, 1, 1, 0, 0, 1, tzinfo=dt.UTC)
    rfc3339 = parse_timestamp(b"2026-11-22T19:56:53.123456+00:00", now)
    assert rfc3339 == dt.datetime(2026, 11, 22, 19, 56, 53, 123456, tzinfo=dt.UTC)
