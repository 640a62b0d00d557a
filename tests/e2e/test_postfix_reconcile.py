"""Reconciling SMTP attempts against the real postfix's log: a dead worker's attempts are looked up, not re-sent."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from herald.channels.postfix_log import PostfixLog
from herald.channels.registry import ChannelRegistry
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider, SmtpSecurity
from herald.core.clock import FrozenClock, SystemClock
from herald.db.delivery_tables import message_attempts
from herald.db.runtime import Runtime
from herald.delivery import ledger, service
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer, rendered_message
from tests.helpers import postfix_address

POSTFIX_LOG = Path("/var/log/postfix.log")
MAILBOX = Path("/var/mail/root")
LEASE = dt.timedelta(seconds=60)
SETTINGS = DeliverySettings(
    quiet_exempt_transactional=True, delivery_lease_seconds=LEASE.total_seconds(), embedded_simulator=False
)


def _postfix() -> tuple[str, int]:
    address = postfix_address()
    assert POSTFIX_LOG.is_file(), "postfix must log to /var/log/postfix.log (scripts/services.sh)"
    return address


def _smtp_until_data(host: str, port: int, message_id: str) -> socket.socket:
    """A client that has sent the message's head after DATA; the caller decides whether the dot follows."""
    sock = socket.create_connection((host, port), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    for command in (b"EHLO probe", b"MAIL FROM:<herald@localhost>", b"RCPT TO:<root@localhost>", b"DATA"):
        sock.sendall(command + b"\r\n")
        while (line := reader.readline())[3:4] == b"-":
            pass
    assert line.startswith(b"354"), line
    sock.sendall(f"Message-ID: {message_id}\r\nSubject: probe\r\n\r\nbody\r\n".encode())
    return sock


def _wait_for(predicate: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"postfix never logged {what}"
        time.sleep(0.1)


def _logged(message_id: str) -> bool:
    with POSTFIX_LOG.open("rb") as handle:
        handle.seek(max(0, POSTFIX_LOG.stat().st_size - (4 << 20)))
        return f"message-id={message_id}".encode() in handle.read()


def test_a_client_that_dies_after_the_dot_was_accepted_and_one_that_dies_before_was_not() -> None:
    host, port = _postfix()
    now = SystemClock().now()
    relay_log = PostfixLog(POSTFIX_LOG, settle=dt.timedelta(seconds=1))
    token = uuid.uuid4().hex[:12]
    dot, no_dot = f"<{token}-dot@localhost>", f"<{token}-nodot@localhost>"
    with _smtp_until_data(host, port, dot) as sock:
        sock.sendall(b".\r\n")  # and vanish without reading the reply: the crash window
    with _smtp_until_data(host, port, no_dot):
        pass  # vanish before the final dot

    def ask(message_id: str, at: dt.datetime) -> str:
        return relay_log.lookup(message_id, since=now - dt.timedelta(seconds=5), sent_by=now, now=at)

    _wait_for(lambda: ask(dot, now) == "accepted", f"the commit of {dot}")
    _wait_for(lambda: _logged(no_dot), f"the reception of {no_dot}")
    assert ask(no_dot, now) == "unknown"  # the settle time has not passed
    assert ask(no_dot, now + dt.timedelta(seconds=1)) == "not_accepted"


def _mail_by_subject(offset: int, prefix: str) -> dict[str, list[str]]:
    with MAILBOX.open("rb") as box:
        box.seek(offset)
        data = box.read()
    found: dict[str, list[str]] = defaultdict(list)
    for message in re.split(rb"(?m)^From ", data):
        head = message.split(b"\n\n", 1)[0].decode(errors="replace")
        subject = re.search(r"(?m)^Subject: (.*)$", head)
        message_id = re.search(r"(?im)^Message-ID: (.*)$", head)
        if subject and message_id and subject.group(1).startswith(prefix):
            found[subject.group(1).strip()].append(message_id.group(1).strip())
    return found


async def test_the_worker_reconciles_a_dead_workers_attempts_instead_of_resending_them(
    runtime: Runtime, clock: FrozenClock
) -> None:
    host, port = _postfix()
    clock.set(SystemClock().now())  # the relay's log is in real time
    run = uuid.uuid4().hex[:10]
    subjects = [f"reconcile {run} accepted", f"reconcile {run} never sent"]
    for subject in subjects:
        request = service.SendRequest(
            message_class="transactional",
            channels=["email"],
            email="root@localhost.localdomain",
            content={"email": {"subject": subject, "text": "Hello."}},
        )
        service.submit_message(runtime, "test", subject, {"s": subject}, request, SETTINGS)
    offset = MAILBOX.stat().st_size if MAILBOX.exists() else 0
    config = SmtpConfig(host=host, port=port, security=SmtpSecurity.PLAIN, default_sender="herald@localhost")
    provider = SmtpEmailProvider(config, clock)

    # A worker claims both rows, records both attempts, sends the first and dies before recording anything.
    with runtime.engine.begin() as conn:
        claims = ledger.claim(conn, now=clock.now(), worker="dead", lease=LEASE, limit=10)
        started = [
            (c, ledger.start_attempt(conn, c, channel="email", provider="smtp", now=clock.now(), extra={}))
            for c in sorted(claims, key=lambda c: c.id)
        ]
    assert len(started) == 2
    (first, first_attempt), (second, _) = started
    first_message = rendered_message(first.row, "email", first_attempt["reference"])
    await provider.send(first_message)
    witness = PostfixLog(POSTFIX_LOG, settle=dt.timedelta(0))
    first_id = provider.message_id(first_message)
    _wait_for(lambda: witness.lookup(first_id, since=clock.now(), sent_by=clock.now(), now=clock.now()) == "accepted",
              f"the commit of {first_id}")  # fmt: skip

    # The lease runs out; a live worker with the relay's log takes over.
    clock.advance(LEASE + dt.timedelta(seconds=1))
    relay_log = PostfixLog(POSTFIX_LOG, settle=dt.timedelta(seconds=2))
    deliverer = Deliverer(runtime, ChannelRegistry([provider]), SETTINGS, relay_logs={"smtp": relay_log})
    try:
        await deliverer.run_pass(max_seconds=30)
        # Too early to call the unsent one absent: the dead worker could have written until its lease's end.
        with runtime.engine.connect() as conn:
            assert ledger.get_message(conn, second.id)["status"] == "unknown"  # type: ignore[index]
        clock.advance(dt.timedelta(seconds=2))
        await deliverer.run_pass(max_seconds=30)
        await deliverer.run_pass(max_seconds=30)
    finally:
        await provider.aclose()

    with runtime.engine.connect() as conn:
        attempts = conn.execute(sa.select(message_attempts).order_by(message_attempts.c.id)).mappings().all()
        statuses = {c.id: ledger.get_message(conn, c.id)["status"] for c in claims}  # type: ignore[index]
    assert statuses == {first.id: "sent", second.id: "sent"}
    by_row = defaultdict(list)
    for attempt in attempts:
        by_row[attempt["message_id"]].append((attempt["status"], attempt["note"], attempt["resubmissions"]))
    assert by_row[first.id] == [("sent", "reconciled:found", 0)]
    assert by_row[second.id] == [("retry", "reconciled:never_accepted", 0), ("sent", None, 0)]
    second_reference = attempts[-1]["reference"]

    expected = {subjects[0]: [first_id], subjects[1]: [f"<{second_reference}@localhost>"]}
    _wait_for(lambda: _mail_by_subject(offset, f"reconcile {run}") == expected, "both deliveries", seconds=30)
    time.sleep(1)  # a duplicate would be right behind
    assert _mail_by_subject(offset, f"reconcile {run}") == expected
