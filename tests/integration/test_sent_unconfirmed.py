"""A dead worker's SMTP attempt settled by its wire marks, and an operator's re-send, on SQLite and PostgreSQL.

A real aiosmtpd relay in this process counts what it accepted; the "dead worker" is an attempt recorded
`submitting` under a worker id that never completes it, with or without its mark on disk.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from herald.channels.registry import ChannelRegistry
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider, SmtpSecurity
from herald.core.clock import FrozenClock
from herald.db.auth_tables import audit_log
from herald.db.runtime import Runtime
from herald.delivery import ledger, service
from herald.delivery.settings import DeliverySettings
from herald.delivery.wire_marks import WireMarks, marks_root
from herald.delivery.worker import Deliverer, new_worker_id
from tests.helpers import cli, free_port, smtp_server
from tests.integration.test_messages_pages import _csrf, sign_in

LEASE = dt.timedelta(seconds=60)
DEAD = new_worker_id()  # this host, a worker that "died" (it never completes what it started)


@dataclass
class Relay:
    """aiosmtpd hooks: the Message-ID of every accepted message."""

    received: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        headers = BytesHeaderParser().parsebytes(envelope.original_content)
        self.received.append((headers.get("Message-ID") or "").strip())
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler = Relay()
    with smtp_server(handler) as port:
        yield handler, port


def _root(runtime: Runtime) -> Path:
    return marks_root(runtime.settings.data_dir)


def _deliver(runtime: Runtime, port: int, *, lease: dt.timedelta = LEASE, **settings: Any) -> None:
    """One worker pass as a freshly started worker of this host, with its own wire marks."""
    worker = new_worker_id()
    marks = WireMarks(_root(runtime), worker)
    config = SmtpConfig(host="127.0.0.1", port=port, security=SmtpSecurity.PLAIN, default_sender="h@localhost")
    provider = SmtpEmailProvider(config, runtime.clock, wire_marks=marks)
    delivery = DeliverySettings(delivery_lease_seconds=lease.total_seconds(), **settings)
    deliverer = Deliverer(runtime, ChannelRegistry([provider]), delivery, worker_id=worker)

    async def run() -> None:
        await deliverer.run_batch(limit=10)
        await provider.aclose()

    asyncio.run(run())
    marks.close()


def _dead_attempt(runtime: Runtime, clock: FrozenClock, *, worker: str = DEAD, mark: bool) -> tuple[int, str]:
    """A message whose attempt a worker recorded `submitting` and then died; its lease has run out."""
    request = service.SendRequest(
        message_class="transactional",
        channels=["email"],
        email="zoe@example.org",
        content={"email": {"subject": "Your code", "text": "It is 123456."}},
    )
    key = uuid.uuid4().hex
    message_id = int(service.submit_message(runtime, "test", key, {"k": key}, request).body["id"])
    marks = WireMarks(_root(runtime), worker)  # made when that worker started, before its first claim
    with runtime.engine.begin() as conn:
        [claimed] = ledger.claim(conn, now=clock.now(), worker=worker, lease=LEASE, limit=1)
        attempt = ledger.start_attempt(conn, claimed, channel="email", provider="smtp", now=clock.now(), extra={})
    if mark:
        marks.before_final_dot(attempt["reference"])  # it wrote the final dot, then died
    marks.close()
    clock.advance(LEASE + dt.timedelta(seconds=1))
    return message_id, f"<{attempt['reference']}@localhost>"


def _all_marks(runtime: Runtime) -> bytes:
    """Every mark on disk (segments are zero-filled past their last mark)."""
    return b"".join(p.read_bytes().split(b"\0", 1)[0] for p in _root(runtime).glob("*/*.marks"))


def _row(runtime: Runtime, message_id: int) -> dict[str, Any]:
    with runtime.engine.connect() as conn:
        row = ledger.get_message(conn, message_id)
        assert row is not None
        return row | {"attempts": ledger.attempts_of(conn, message_id)}


def test_a_marked_attempt_is_settled_sent_unconfirmed_and_never_sent_again(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int]
) -> None:
    sink, port = relay
    message_id, _ = _dead_attempt(runtime, clock, mark=True)
    _deliver(runtime, port)
    row = _row(runtime, message_id)
    assert row["status"] == "sent_unconfirmed" and row["hold_reason"] == "unconfirmed:final_dot"
    [attempt] = row["attempts"]
    assert attempt["status"] == "sent_unconfirmed" and attempt["resubmissions"] == 0
    assert sink.received == []
    clock.advance(dt.timedelta(hours=1))
    _deliver(runtime, port)  # never claimed again
    assert sink.received == [] and _row(runtime, message_id)["status"] == "sent_unconfirmed"


def test_an_unmarked_attempt_of_a_dead_worker_here_is_resent_with_its_message_id(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int]
) -> None:
    sink, port = relay
    message_id, wire_id = _dead_attempt(runtime, clock, mark=False)
    _deliver(runtime, port)
    row = _row(runtime, message_id)
    assert row["status"] == "sent"
    [attempt] = row["attempts"]
    assert attempt["status"] == "sent" and attempt["resubmissions"] == 1
    assert sink.received == [wire_id]


def test_marks_that_cannot_be_read_here_settle_it_unconfirmed(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int]
) -> None:
    sink, port = relay
    elsewhere, _ = _dead_attempt(runtime, clock, worker="another-host:4242:abcdef", mark=False)
    _deliver(runtime, port)
    assert _row(runtime, elsewhere)["hold_reason"] == "unconfirmed:marks_unreadable"
    missing, _ = _dead_attempt(runtime, clock, mark=False)
    for path in (_root(runtime) / DEAD.replace(":", "_")).iterdir():
        path.unlink()
    (_root(runtime) / DEAD.replace(":", "_")).rmdir()
    _deliver(runtime, port)
    assert _row(runtime, missing)["status"] == "sent_unconfirmed"
    assert sink.received == []


def test_a_deployment_may_prefer_resending_transactional_mail(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int]
) -> None:
    sink, port = relay
    message_id, wire_id = _dead_attempt(runtime, clock, mark=True)
    _deliver(runtime, port, resend_unconfirmed_transactional=True)
    assert _row(runtime, message_id)["status"] == "sent"
    assert sink.received == [wire_id]


def test_the_smtp_adapter_marks_only_a_message_whose_final_dot_it_writes(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int]
) -> None:
    sink, port = relay
    request = service.SendRequest(
        message_class="transactional",
        channels=["email"],
        email="zoe@example.org",
        content={"email": {"subject": "Hello", "text": ".a line that starts with a dot\r\n."}},
    )
    message_id = int(service.submit_message(runtime, "test", "k1", {}, request).body["id"])
    _deliver(runtime, port)
    [attempt] = _row(runtime, message_id)["attempts"]
    marks = _all_marks(runtime)
    assert marks.splitlines() == [attempt["reference"].encode()]
    assert sink.received == [f"<{attempt['reference']}@localhost>"]
    # A relay that refuses at RCPT never sees a DATA: no mark.
    closed = free_port()
    before = _dead_attempt(runtime, clock, mark=False)[0]
    _deliver(runtime, closed)  # nothing listens: the connection fails before anything is written
    assert _row(runtime, before)["status"] == "retry_wait"
    assert _all_marks(runtime).splitlines() == marks.splitlines()


def test_an_operator_resend_through_the_api_goes_out_once_with_the_same_message_id(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int], api: TestClient
) -> None:
    sink, port = relay
    message_id, wire_id = _dead_attempt(runtime, clock, mark=True)
    _deliver(runtime, port)
    listed = api.get("/api/messages", params={"status": "sent_unconfirmed"}).json()
    assert listed["total"] == 1 and listed["messages"][0]["id"] == message_id
    shown = api.get(f"/api/messages/{message_id}").json()
    assert shown["status"] == "sent_unconfirmed" and shown["attempts"][0]["status"] == "sent_unconfirmed"

    answer = api.post(f"/api/messages/{message_id}/resend")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"id": message_id, "status": "queued", "reference": wire_id[1:-11]}
    again = api.post(f"/api/messages/{message_id}/resend")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_unconfirmed"
    assert api.post("/api/messages/999999/resend").status_code == 404

    _deliver(runtime, port)
    row = _row(runtime, message_id)
    assert row["status"] == "sent" and row["attempts"][0]["resubmissions"] == 1
    assert sink.received == [wire_id]  # the operator's copy, under the same Message-ID
    with runtime.engine.connect() as conn:
        [audited] = conn.execute(sa.select(audit_log).where(audit_log.c.action == "message.resend")).mappings()
    assert audited["target_id"] == message_id and audited["actor_kind"] == "api_key"
    assert api.post(f"/api/messages/{message_id}/resend").status_code == 409  # sent now: nothing to re-send


def test_the_cli_lists_and_resends_an_unconfirmed_message(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int], cli_env: dict[str, str]
) -> None:
    sink, port = relay
    message_id, wire_id = _dead_attempt(runtime, clock, mark=True)
    _deliver(runtime, port)
    listed = cli("messages", "list", "--status", "sent_unconfirmed")
    assert listed.exit_code == 0 and "1 message(s)" in listed.stdout and "final dot" in listed.stdout
    as_json = json.loads(cli("messages", "list", "--status", "sent_unconfirmed", "--json").stdout)
    assert [m["id"] for m in as_json["messages"]] == [message_id]
    resent = cli("messages", "resend", str(message_id))
    assert resent.exit_code == 0, resent.output
    assert json.loads(resent.stdout)["status"] == "queued"
    refused = cli("messages", "resend", str(message_id))
    assert refused.exit_code == 1 and "not_unconfirmed" in refused.output
    clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))  # the CLI queued it on the system clock
    _deliver(runtime, port)
    assert sink.received == [wire_id]


def test_the_message_page_shows_why_and_resends_with_a_csrf_protected_button(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int]
) -> None:
    sink, port = relay
    message_id, wire_id = _dead_attempt(runtime, clock, mark=True)
    _deliver(runtime, port)
    agent = sign_in(runtime, clock, "agent")
    page = agent.get(f"/messages/{message_id}").text
    assert 'data-testid="unconfirmed-why"' in page and "final dot" in page
    assert "Sent, unconfirmed (no reply recorded)" in page  # its history
    assert 'data-testid="resend"' not in page  # agents read; re-sending sends mail
    listed = agent.get("/messages", params={"status": "sent_unconfirmed"}).text
    assert f'href="/messages/{message_id}"' in listed

    marketer = sign_in(runtime, clock, "marketer")
    page = marketer.get(f"/messages/{message_id}").text
    assert 'data-testid="resend"' in page
    forged = marketer.post(f"/messages/{message_id}/resend", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403 and _row(runtime, message_id)["status"] == "sent_unconfirmed"
    done = marketer.post(f"/messages/{message_id}/resend", data={"csrf_token": _csrf(page)})
    assert done.status_code == 303 and done.headers["location"] == f"/messages/{message_id}?notice=resend"
    after = marketer.get(done.headers["location"]).text
    assert 'data-testid="notice"' in after and re.search(r'data-testid="message-status">\s*queued', after)
    twice = marketer.post(f"/messages/{message_id}/resend", data={"csrf_token": _csrf(page)})
    assert twice.status_code == 409 and 'data-testid="error"' in twice.text
    _deliver(runtime, port)
    assert sink.received == [wire_id]


def test_an_attempt_a_receipt_confirmed_before_its_worker_died_is_not_sent_again(
    runtime: Runtime, clock: FrozenClock, relay: tuple[Relay, int]
) -> None:
    sink, port = relay
    message_id, _ = _dead_attempt(runtime, clock, mark=False)
    with runtime.engine.begin() as conn:  # the provider's receipt, applied before the worker recorded anything
        [attempt] = ledger.attempts_of(conn, message_id)
        assert ledger.advance_attempt(conn, attempt["id"], "sent", {}, now=clock.now())
    _deliver(runtime, port)
    row = _row(runtime, message_id)
    assert row["status"] == "sent" and len(row["attempts"]) == 1 and row["attempts"][0]["resubmissions"] == 0
    assert sink.received == []


@dataclass
class StallingRelay(Relay):
    """Stalls once, past the worker's per-attempt time limit, at RCPT (before DATA) or after the final dot."""

    stall_at: str = "rcpt"
    stalls: int = 1

    async def _stall(self, where: str) -> None:
        if self.stall_at == where and self.stalls:
            self.stalls -= 1
            await asyncio.sleep(1.6)  # the attempt's limit is max(1 s, lease / 2) = 1 s here

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        await self._stall("rcpt")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)  # queued, as a relay does before its 250
        await self._stall("dot")
        return reply


def _deliver_with_short_lease(runtime: Runtime, port: int) -> None:
    _deliver(runtime, port, lease=dt.timedelta(seconds=2), reconcile_delay_seconds=5)


def _queued(runtime: Runtime) -> int:
    request = service.SendRequest(
        message_class="transactional",
        channels=["email"],
        email="zoe@example.org",
        content={"email": {"subject": "Your code", "text": "It is 123456."}},
    )
    return int(service.submit_message(runtime, "test", uuid.uuid4().hex, {}, request).body["id"])


def test_an_attempt_cut_off_before_its_final_dot_is_sent_again_soon_with_its_message_id(
    runtime: Runtime, clock: FrozenClock
) -> None:
    sink = StallingRelay(stall_at="rcpt")
    with smtp_server(sink) as port:
        message_id = _queued(runtime)
        _deliver_with_short_lease(runtime, port)  # times out at RCPT: closed before DATA, nothing marked
        row = _row(runtime, message_id)
        assert row["status"] == "unknown" and row["attempts"][0]["note"] == "outcome_unknown:before_final_dot"
        assert row["available_at"] - clock.now() <= dt.timedelta(seconds=5)  # not the 10-minute deadline
        clock.advance(dt.timedelta(seconds=6))
        _deliver_with_short_lease(runtime, port)
    row = _row(runtime, message_id)
    [attempt] = row["attempts"]
    assert row["status"] == "sent" and attempt["status"] == "sent" and attempt["resubmissions"] == 1
    assert sink.received == [f"<{attempt['reference']}@localhost>"]


def test_an_attempt_cut_off_after_its_final_dot_is_never_sent_again(runtime: Runtime, clock: FrozenClock) -> None:
    sink = StallingRelay(stall_at="dot")
    with smtp_server(sink) as port:
        message_id = _queued(runtime)
        _deliver_with_short_lease(runtime, port)  # the dot left (marked); the reply came too late
        row = _row(runtime, message_id)
        assert row["status"] == "unknown" and row["attempts"][0]["note"] == "outcome_unknown"
        clock.advance(dt.timedelta(seconds=6))
        _deliver_with_short_lease(runtime, port)  # before the deadline: still waiting, nothing sent
        assert _row(runtime, message_id)["status"] == "unknown"
        clock.advance(dt.timedelta(minutes=11))
        _deliver_with_short_lease(runtime, port)
    row = _row(runtime, message_id)
    assert row["status"] == "sent_unconfirmed" and row["hold_reason"] == "unconfirmed:reply_lost"
    assert sink.received == [f"<{row['attempts'][0]['reference']}@localhost>"]  # once: the stalled copy
