"""Exactly once on a relay without a log: SIGKILLed `herald worker`s, an independent SMTP sink, wire marks.

No HERALD_SMTP_RECONCILE_LOG: the relay (tests/e2e/smtp_sink.py, aiosmtpd in its own process, not Herald)
cannot be asked what it accepted. Each kill lands while the victim is delivering: once the sink has
received a message over one of the victim's own connections since the last kill, at a random moment in
the next 50 ms. Then: no Message-ID twice at the sink, exactly one copy of every message, every ledger row
`sent` or `sent_unconfirmed`, and every `sent_unconfirmed` row's Message-ID at the sink (else a loss).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from herald.core.clock import SystemClock
from herald.core.settings import Settings
from herald.db.delivery_tables import message_attempts, messages
from herald.db.runtime import Runtime
from herald.delivery import ledger, service
from herald.delivery.settings import DeliverySettings

COUNT, KILLS = 1000, 15  # the full run (`make soak`): the figure
SHORT_COUNT, SHORT_KILLS = 300, 5  # the default run's version: same checks, fewer kills
WAVE = 200  # more messages when the queue runs low before every kill has landed
SETTLED = ("sent", "sent_unconfirmed")
HERALD = str(Path(sys.executable).with_name("herald"))
SINK = Path(__file__).with_name("smtp_sink.py")
HOST = socket.gethostname()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sink_process(out: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The independent sink on a free port, logging to `out`, until the block ends: its port and process."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SINK), str(port), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == b"ready"
    try:
        yield port, proc
    finally:
        proc.send_signal(signal.SIGCONT)  # a test may have frozen it (SIGSTOP); a stopped sink never exits
        proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def _sink(out: Path) -> Iterator[int]:
    with sink_process(out) as (port, _proc):
        yield port


class SinkLog:
    """Reads the sink's file as it grows: (Message-ID, client port) per accepted message."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset = path, 0

    def new(self) -> list[tuple[str, int]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [(mid, int(port)) for mid, port in (line.split("\t") for line in complete.decode().splitlines())]

    def all(self) -> list[str]:
        return [line.split("\t")[0] for line in self.path.read_text().splitlines()]


def _client_ports(pid: int, server_port: int) -> set[int]:
    """Local ports of the process's TCP connections to `server_port` (its sockets' inodes in /proc/net/tcp)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _enqueue(runtime: Runtime, run_id: str, start: int, count: int) -> list[int]:
    """The first message through the service (it creates the recipient), the rest straight into the ledger."""
    first = service.SendRequest(
        message_class="transactional",
        channels=["email"],
        email="sink@example.com",
        content={"email": {"subject": f"once {run_id} {start}", "text": f"Message {start} of {run_id}."}},
        message_key=f"once-{run_id}-{start}",
    )
    submitted = service.submit_message(
        runtime, "test", f"{run_id}-{start}", {"i": start}, first, DeliverySettings(quiet_exempt_transactional=True)
    )
    ids = [int(submitted.body["id"])]
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        person_id = int(conn.scalar(sa.select(messages.c.person_id).where(messages.c.id == ids[0])) or 0)
        for i in range(start + 1, start + count):
            new = ledger.NewMessage(
                person_id=person_id,
                message_key=f"once-{run_id}-{i}",
                message_class="transactional",
                status="queued",
                channels=["email"],
                addresses={"email": "sink@example.com"},
                content={"email": {"subject": f"once {run_id} {i}", "text": f"Message {i} of {run_id}."}},
                available_at=now,
            )
            ids.append(ledger.enqueue(conn, new, now).id)
    return ids


def _pending(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(messages).where(messages.c.status.not_in(SETTLED))
        return int(conn.scalar(query) or 0)


def _statuses(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        query = sa.select(messages.c.status, sa.func.count()).group_by(messages.c.status)
        return {status: int(n) for status, n in conn.execute(query)}


def _submitting(engine: sa.Engine, pid: int) -> int:
    """The victim's attempts with no outcome: it was killed mid-send."""
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(
            message_attempts.c.worker.like(f"{HOST}:{pid}:%"), message_attempts.c.status == "submitting"
        )
        return int(conn.scalar(query) or 0)


@dataclass
class Workers:
    env: dict[str, str]
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

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
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _env(settings: Settings, port: int) -> dict[str, str]:
    return os.environ | {
        "HERALD_DATA_DIR": str(settings.data_dir),
        "HERALD_DATABASE_URL": settings.resolved_database_url,
        "HERALD_SMTP_HOST": "127.0.0.1",
        "HERALD_SMTP_PORT": str(port),
        "HERALD_SMTP_SECURITY": "plain",
        "HERALD_EMAIL_FROM": "herald@localhost",
        "HERALD_EMBEDDED_SIMULATOR": "false",
        "HERALD_QUIET_EXEMPT_TRANSACTIONAL": "true",
        "HERALD_DELIVERY_LEASE_SECONDS": "2",
        "HERALD_DELIVERY_BATCH_SIZE": "8",
        # A transient failure under load (a slow sink) comes back within seconds, not minutes.
        "HERALD_DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
        "HERALD_DELIVERY_BACKOFF_MAX_SECONDS": "3",
        "HERALD_SMTP_RECONCILE_LOG": "",
        "HERALD_BACKUP_SCHEDULE": "off",
        "CI": "true",
    }


def _where_marked(settings: Settings, attempts: list[dict[str, object]]) -> str:
    """For a failure's message: where each attempt's mark sits in its worker's file (the last line means the
    kill came right after the mark; an earlier one means the worker went on after writing the dot)."""
    out = []
    for attempt in attempts:
        folder = settings.data_dir / "marks" / str(attempt["worker"]).replace(":", "_")
        lines = b"".join(p.read_bytes().split(b"\0", 1)[0] for p in sorted(folder.glob("*.marks"))).splitlines()
        ref = str(attempt["reference"]).encode()
        at = lines.index(ref) + 1 if ref in lines else None
        out.append(f"{attempt['reference']} by {attempt['worker']} ({attempt['note']}): mark {at} of {len(lines)}")
    return "; ".join(out)


def _quiet(path: Path, *, still: float = 1.0, limit: float = 15.0) -> None:
    """Wait until the relay's file has stopped growing: a dot the sink holds in its socket buffer (it shares
    two busy cores) is written when the sink gets to it, after the ledger has settled its row."""
    deadline = time.monotonic() + limit
    size = -1
    while time.monotonic() < deadline and path.stat().st_size != size:
        size = path.stat().st_size
        time.sleep(still)


def _crash_run(
    settings: Settings, engine: sa.Engine, tmp_path: Path, *, worker_count: int, count: int, kills: int
) -> None:
    run_id = uuid.uuid4().hex[:10]
    seed = int(os.environ.get("HERALD_CRASH_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    print(f"\nwire-marks crash run {run_id}, seed {seed}, {worker_count} worker(s)")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings=settings, engine=engine, clock=SystemClock())
    ids = _enqueue(runtime, run_id, 0, count)
    sink_file = tmp_path / "sink.log"
    sink_file.touch()
    started = time.monotonic()
    mid_send: list[int] = []  # per kill: the victim's attempts left without an outcome
    with _sink(sink_file) as port:
        workers = Workers(_env(settings, port), tmp_path / "workers.log")
        sink = SinkLog(sink_file)
        alive = [workers.start() for _ in range(worker_count)]
        try:
            # Count only kills that caught the victim with attempts in flight: a kill that lands between two
            # batches (completions are grouped and fast) proves nothing, so another one follows, up to a cap.
            while sum(1 for n in mid_send if n) < kills and len(mid_send) < kills * 4:
                victim = rng.choice(alive)
                deadline, next_check, armed = time.monotonic() + 60, 0.0, False
                while time.monotonic() < deadline and not armed:
                    ports = _client_ports(victim.pid, port)
                    armed = any(client in ports for _, client in sink.new())
                    if time.monotonic() >= next_check:
                        # Every kill must land on a worker with something to send: top the queue up.
                        next_check = time.monotonic() + 0.5
                        # (Rows waiting to be retried or taken over do not count: they are not work now.)
                        if _statuses(engine).get("queued", 0) < WAVE // 4:
                            ids += _enqueue(runtime, run_id, len(ids), WAVE)
                    assert victim.poll() is None, "a worker died by itself; see workers.log"
                    time.sleep(0.002)
                if not armed:
                    tail = (tmp_path / "workers.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"victim {victim.pid} sent nothing in 60 s; rows {_statuses(engine)}; log:\n{tail}")
                time.sleep(rng.uniform(0.0, 0.05))
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                mid_send.append(_submitting(engine, victim.pid))
                alive.remove(victim)
                alive.append(workers.start())
            deadline = time.monotonic() + 120
            while _pending(engine) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            workers.stop_all()
        log = (tmp_path / "workers.log").read_text(errors="replace")[-3000:]
        assert _pending(engine) == 0, f"messages left unsettled; worker log tail:\n{log}"
        before_quiet = len(sink.all())
        _quiet(sink_file)
        at_sink = Counter(sink.all())
        late = sum(at_sink.values()) - before_quiet

    with engine.connect() as conn:
        rows = {r.id: r.status for r in conn.execute(sa.select(messages.c.id, messages.c.status))}
        attempts = [dict(a) for a in conn.execute(sa.select(message_attempts)).mappings()]
    by_message: dict[int, list[dict[str, object]]] = defaultdict(list)
    for attempt in attempts:
        by_message[int(attempt["message_id"])].append(attempt)
    statuses = Counter(rows.values())
    doubled = {mid: n for mid, n in at_sink.items() if n > 1}
    ours = {f"<{a['reference']}@localhost>" for a in attempts}
    copies = {m: sum(at_sink[f"<{a['reference']}@localhost>"] for a in by_message[m]) for m in rows}
    lost = [m for m, n in copies.items() if n == 0]
    unconfirmed_lost = [m for m in lost if rows[m] == "sent_unconfirmed"]
    resubmissions = sum(int(a["resubmissions"]) for a in attempts)
    notes = Counter(a["note"] for a in attempts if a["note"])
    print(
        f"messages={len(rows)} kills={len(mid_send)} mid-send={sum(1 for n in mid_send if n)} "
        f"(attempts in flight per kill {mid_send}) statuses={dict(statuses)} resubmissions={resubmissions} "
        f"notes={dict(notes)} sink={sum(at_sink.values())} (after the ledger settled: {late}) "
        f"seconds={time.monotonic() - started:.1f}"
    )
    assert sorted(rows) == sorted(ids)
    assert doubled == {}, f"Message-IDs received twice: {list(doubled.items())[:10]}"
    assert set(at_sink) <= ours, "the sink got mail no attempt sent"
    assert {m: n for m, n in copies.items() if n > 1} == {}, "a message reached the sink under two Message-IDs"
    assert unconfirmed_lost == [], (
        f"sent_unconfirmed but never received: {unconfirmed_lost[:10]}; "
        f"{_where_marked(settings, [a for m in unconfirmed_lost for a in by_message[m]])}"
    )
    assert lost == [], f"lost: {lost[:10]}"
    assert set(statuses) <= set(SETTLED), statuses
    # Every counted kill landed while the victim had attempts in flight — the cases the marks exist for.
    assert sum(1 for n in mid_send if n) == kills, mid_send


@pytest.mark.slow
def test_killed_workers_send_every_message_once_through_a_relay_without_a_log(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    _crash_run(settings, engine, tmp_path, worker_count=1, count=SHORT_COUNT, kills=SHORT_KILLS)


@pytest.mark.soak
def test_fifteen_kills_in_a_thousand_messages_send_each_once(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    _crash_run(settings, engine, tmp_path, worker_count=1, count=COUNT, kills=KILLS)


@pytest.mark.soak
@pytest.mark.parametrize("db_kind", ["postgres"])
def test_three_killed_workers_on_postgresql_send_every_message_once(
    settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    _crash_run(settings, engine, tmp_path, worker_count=3, count=COUNT, kills=KILLS)
