"""Crash harness: 1,000 messages through real `herald worker` processes and the real postfix, SIGKILLed ≥10 times.

Invariant checked (docs/delivery.md, "What exactly-once means here"): with the relay's log configured
(HERALD_SMTP_RECONCILE_LOG), every message is in /var/mail/root exactly once — counted by Message-ID at the
mailbox — and nothing is lost; attempts a dead worker left in flight are reconciled against postfix's log,
never re-sent blindly.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db.delivery_tables import message_attempts, messages
from herald.db.runtime import Runtime
from herald.delivery import service
from herald.delivery.settings import DeliverySettings
from tests.helpers import postfix_address

MAILBOX = Path("/var/mail/root")
POSTFIX_LOG = Path("/var/log/postfix.log")  # scripts/services.sh: maillog_file
COUNT = 1000
KILLS = 10
WAVE = 200  # extra messages when the queue drains before every kill has landed
WORKERS = 3
WARM_SECONDS = 1.5  # a `herald worker` needs about a second to import and start claiming
HERALD = str(Path(sys.executable).with_name("herald"))


def _enqueue(settings: Settings, engine: sa.Engine, run_id: str, start: int = 0, count: int = COUNT) -> list[int]:
    runtime = Runtime(settings=settings, engine=engine, clock=SystemClock())
    delivery = DeliverySettings(quiet_exempt_transactional=True)
    ids = []
    for i in range(start, start + count):
        request = service.SendRequest(
            message_class="transactional",
            channels=["email"],
            email="root@localhost.localdomain",  # postfix delivers it to /var/mail/root
            content={"email": {"subject": f"crash {run_id} {i}", "text": f"Message {i} of the crash run {run_id}."}},
        )
        submitted = service.submit_message(runtime, "test", f"{run_id}-{i}", {"i": i}, request, delivery)
        ids.append(submitted.body["id"])
    return ids


def _env(settings: Settings, host: str, port: int) -> dict[str, str]:
    return os.environ | {
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.resolved_database_url,
        "HERALD_SMTP_HOST": host,
        "HERALD_SMTP_PORT": str(port),
        "HERALD_SMTP_SECURITY": "plain",
        "HERALD_EMAIL_FROM": "herald@localhost",
        "HERALD_EMBEDDED_SIMULATOR": "false",
        "HERALD_QUIET_EXEMPT_TRANSACTIONAL": "true",
        "HERALD_DELIVERY_LEASE_SECONDS": "2",
        "HERALD_DELIVERY_BATCH_SIZE": "4",
        "HERALD_SMTP_RECONCILE_LOG": str(POSTFIX_LOG),
        "HERALD_SMTP_RECONCILE_SETTLE_SECONDS": "2",
        "HERALD_BACKUP_SCHEDULE": "off",
        "CI": "true",
    }


class Workers:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.procs = env, log, list[subprocess.Popen[bytes]]()

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            proc = subprocess.Popen([HERALD, "worker", "--concurrency", "4"], env=self.env, stdout=out, stderr=out)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _pending(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(messages).where(messages.c.status != "sent")
        return int(conn.scalar(query) or 0)


_HEADER = re.compile(rb"^(Subject|Message-ID): (.*)$", re.MULTILINE | re.IGNORECASE)


def _copies(run_id: str, offset: int) -> dict[int, list[str]]:
    """Subject index → the Message-IDs of every copy of this run's messages appended to root's mbox."""
    found: dict[int, list[str]] = defaultdict(list)
    prefix = f"crash {run_id} "
    with MAILBOX.open("rb") as box:
        box.seek(offset)
        data = box.read()
    for message in re.split(rb"(?m)^From ", data):
        head = message.split(b"\n\n", 1)[0]
        headers = {k.lower(): v.strip().decode() for k, v in _HEADER.findall(head)}
        subject = headers.get(b"subject", "")
        if subject.startswith(prefix):
            found[int(subject.removeprefix(prefix))].append(headers.get(b"message-id", ""))
    return found


def _wait_for_mail(run_id: str, offset: int, expected: int, deadline: float) -> dict[int, list[str]]:
    copies = _copies(run_id, offset)
    while len(copies) < expected and time.monotonic() < deadline:
        time.sleep(0.5)  # postfix's local delivery is asynchronous
        copies = _copies(run_id, offset)
    time.sleep(1)  # and a late duplicate would arrive just after
    return _copies(run_id, offset)


@pytest.mark.slow
def test_sigkilled_workers_deliver_every_message_exactly_once_at_the_mailbox(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    host, port = postfix_address()
    assert POSTFIX_LOG.is_file(), "postfix must log to /var/log/postfix.log (scripts/services.sh)"
    run_id = uuid.uuid4().hex[:10]
    seed = int(os.environ.get("HERALD_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"crash run {run_id}, seed {seed}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ids = _enqueue(settings, engine, run_id)
    assert len(set(ids)) == COUNT
    mbox_offset = MAILBOX.stat().st_size if MAILBOX.exists() else 0

    workers = Workers(_env(settings, host, port), tmp_path / "workers.log")
    alive = [(workers.start(), time.monotonic()) for _ in range(WORKERS)]
    kills = mid_work = 0
    try:
        # The nemesis: once the workers are visibly sending, SIGKILL a random warm one (started long enough
        # ago to be working) at a random moment (seeded), and restart it shortly after. Kills land inside
        # claim, send and complete alike.
        # Kill until KILLS kills have landed with work pending; a fast machine that drains the queue
        # first gets another wave, so the test never depends on how quickly this box sends.
        while mid_work < KILLS:
            if _pending(engine) == 0:
                ids += _enqueue(settings, engine, run_id, start=len(ids), count=WAVE)
            before = _pending(engine)
            progress_deadline = time.monotonic() + 30
            while before and _pending(engine) == before and time.monotonic() < progress_deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.15))
            warm = [i for i, (_, started) in enumerate(alive) if time.monotonic() - started >= WARM_SECONDS]
            if not warm:
                continue
            victim, _ = alive.pop(rng.choice(warm))
            busy = _pending(engine) > 0
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            kills += 1
            mid_work += busy
            time.sleep(rng.uniform(0.0, 0.1))
            alive.append((workers.start(), time.monotonic()))
        deadline = time.monotonic() + 180
        while _pending(engine) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        workers.stop_all()
    log = (tmp_path / "workers.log").read_text(errors="replace")[-4000:]
    assert _pending(engine) == 0, f"messages left unsent; worker log tail:\n{log}"

    with engine.connect() as conn:
        attempts = conn.execute(sa.select(message_attempts)).mappings().all()
        claims = sum(conn.execute(sa.select(messages.c.claims)).scalars())
    by_message = defaultdict(list)
    for attempt in attempts:
        by_message[attempt["message_id"]].append(attempt)
    assert sorted(by_message) == sorted(ids)

    copies = _wait_for_mail(run_id, mbox_offset, len(ids), time.monotonic() + 120)
    index_of = {message_id: i for i, message_id in enumerate(ids)}
    lost = [i for i in range(len(ids)) if not copies.get(i)]
    assert lost == [], f"lost messages (subject indexes): {lost[:20]}"
    doubled = {i: got for i, got in copies.items() if len(got) > 1}
    assert doubled == {}, f"delivered more than once: {dict(list(doubled.items())[:10])}"
    for message_id, its_attempts in by_message.items():
        [sent] = [a for a in its_attempts if a["status"] == "sent"]
        # The one copy is the attempt the ledger records as sent; every other attempt was never accepted.
        assert copies[index_of[message_id]] == [f"<{sent['reference']}@localhost>"], (message_id, its_attempts)
        assert all(a["status"] == "retry" for a in its_attempts if a is not sent), its_attempts
    notes = Counter(a["note"] for a in attempts if a["note"])
    reconciled = notes["reconciled:found"] + notes["reconciled:never_accepted"]
    resubmissions = sum(a["resubmissions"] for a in attempts)
    print(
        f"kills={kills} (with work pending: {mid_work}) claims={claims} attempts={len(attempts)} "
        f"notes={dict(notes)} resubmissions={resubmissions} copies={Counter(len(v) for v in copies.values())}"
    )
    assert kills >= KILLS and mid_work >= KILLS  # every kill landed while messages were still unsent
    assert resubmissions == 0  # nothing was re-sent blindly
    # The kills did hit attempts in flight, and those were settled by postfix's log, not by a guess.
    assert reconciled >= 1, notes
