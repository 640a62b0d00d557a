"""Rows planned with a template version and variables are rendered by the worker at claim time, into a real
SMTP sink (aiosmtpd): sent per person, held with the reason when the render holds, shown on the message page."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from herald.channels.registry import ChannelRegistry
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider, SmtpSecurity
from herald.core.clock import FrozenClock
from herald.db.contacts_tables import people
from herald.db.delivery_tables import message_attempts, messages
from herald.db.runtime import Runtime
from herald.delivery import ledger
from herald.delivery.settings import DeliverySettings
from herald.delivery.worker import Deliverer
from herald.templates.store import create_template
from tests.helpers import smtp_server
from tests.integration.test_messages_pages import sign_in

PARTS = {
    "email.subject": "Your order, {{ first_name }}",
    "email.text": "Hello {{ first_name }},\nyour order {{ order }} has shipped.\n{{ sign_off }}\n",
    "email.html": "<p>Hello {{ first_name }}, order <b>{{ order }}</b> has shipped.</p>",
}


@dataclass
class Sink:
    received: list[email.message.EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        self.received.append(parsed)
        return "250 2.0.0 Ok: queued"

    def texts(self) -> dict[str, str]:
        out = {}
        for message in self.received:
            body = message.get_body(("plain",))
            assert body is not None
            out[str(message["Subject"])] = body.get_content().replace("\r\n", "\n")
        return out


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    with smtp_server(handler) as port:
        yield handler, port


@pytest.fixture
async def deliverer(runtime: Runtime, sink: tuple[Sink, int]) -> AsyncIterator[Deliverer]:
    config = SmtpConfig(
        host="127.0.0.1", port=sink[1], security=SmtpSecurity.PLAIN, default_sender="herald@localhost", pool_size=2
    )
    provider = SmtpEmailProvider(config, runtime.clock)
    yield Deliverer(runtime, ChannelRegistry([provider]), DeliverySettings(quiet_exempt_transactional=True))
    await provider.aclose()


def _template(runtime: Runtime, variables: Mapping[str, str | None] | None = None) -> None:
    fallbacks = {"sign_off": "The shop"} if variables is None else variables
    create_template(runtime.engine, runtime.clock, "shipped", PARTS, fallbacks)


def _queue(runtime: Runtime, variables: Mapping[str, Any], key: str) -> int:
    """A ledger row as a campaign launch writes it: template reference and variables, no content."""
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        person = conn.execute(
            people.insert()
            .values(attributes={}, tags=[], locked_fields=[], created_at=now, updated_at=now)
            .returning(people.c.id)
        ).scalar_one()
        row = ledger.NewMessage(
            person_id=person,
            message_key=key,
            message_class="transactional",
            status="queued",
            channels=["email"],
            addresses={"email": f"{key}@example.com"},
            content={},
            available_at=now,
            zones=["Europe/London"],
            zone_source="contact",
            template_id="shipped",
            template_version=1,
            variables=variables,
            campaign_id=7,
        )
        return ledger.enqueue(conn, row, now).id


def _row(runtime: Runtime, message_id: int) -> dict[str, Any]:
    with runtime.engine.connect() as conn:
        row = ledger.get_message(conn, message_id)
    assert row is not None
    return row


def _attempts(runtime: Runtime) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(message_attempts)) or 0)


async def test_each_person_gets_their_own_rendering_and_nothing_is_written_back(
    runtime: Runtime, deliverer: Deliverer, sink: tuple[Sink, int]
) -> None:
    _template(runtime)
    ann = _queue(runtime, {"first_name": "Ann", "order": "A-1"}, "ann")
    bob = _queue(runtime, {"first_name": "Bob", "order": "B-2", "sign_off": "Cheers"}, "bob")
    assert await deliverer.run_pass(concurrency=2) == 2
    await asyncio.sleep(0.2)  # the sink's thread hands over the last message
    texts = sink[0].texts()
    assert texts == {
        "Your order, Ann": "Hello Ann,\nyour order A-1 has shipped.\nThe shop\n",  # the declared fallback
        "Your order, Bob": "Hello Bob,\nyour order B-2 has shipped.\nCheers\n",
    }
    html = [m.get_body(("html",)) for m in sink[0].received]
    assert all(part is not None and "has shipped" in part.get_content() for part in html)
    for message_id in (ann, bob):
        row = _row(runtime, message_id)
        assert row["status"] == "sent"
        assert row["content"] == {}  # deterministic: rendered again wherever it is needed, never stored
    # Compiled once for the version and plan, whoever it is rendered for.
    assert len(deliverer.templates.compiled_versions()) == 1


async def test_a_render_that_holds_holds_the_row_and_sends_nothing(
    runtime: Runtime, deliverer: Deliverer, sink: tuple[Sink, int]
) -> None:
    _template(runtime, {})  # sign_off has no fallback now
    missing = _queue(runtime, {"first_name": "Ann", "order": "A-1"}, "ann")
    leftover = _queue(runtime, {"first_name": "{{ first_name }}", "order": "B-2", "sign_off": "x"}, "bob")
    fine = _queue(runtime, {"first_name": "Cy", "order": "C-3", "sign_off": "Bye"}, "cy")
    assert await deliverer.run_pass() == 3
    await asyncio.sleep(0.2)
    assert list(sink[0].texts()) == ["Your order, Cy"]
    held = _row(runtime, missing)
    assert (held["status"], held["hold_reason"], held["releasable"]) == ("held", "missing_variable:sign_off", False)
    placeholder = _row(runtime, leftover)
    assert placeholder["status"] == "held" and placeholder["hold_reason"].startswith("leftover_placeholder:")
    assert _row(runtime, fine)["status"] == "sent"
    assert _attempts(runtime) == 1  # a held row never opened an attempt
    # A held row is not claimed again.
    assert await deliverer.run_pass() == 0


async def test_a_missing_template_version_holds_instead_of_failing_the_batch(
    runtime: Runtime, deliverer: Deliverer, sink: tuple[Sink, int]
) -> None:
    _template(runtime)
    gone = _queue(runtime, {"first_name": "Ann", "order": "A-1"}, "ann")
    with runtime.engine.begin() as conn:
        conn.execute(sa.update(messages).where(messages.c.id == gone).values(template_version=9))
    ok = _queue(runtime, {"first_name": "Bob", "order": "B-2"}, "bob")
    assert await deliverer.run_pass() == 2
    assert _row(runtime, gone)["hold_reason"] == "template_unavailable:not_found"
    assert _row(runtime, ok)["status"] == "sent"


def test_the_message_page_shows_the_rendered_parts(runtime: Runtime, clock: FrozenClock) -> None:
    _template(runtime)
    message_id = _queue(runtime, {"first_name": "Ann", "order": "A-1"}, "ann")
    clock.advance(dt.timedelta(seconds=1))
    page = sign_in(runtime, clock, "agent").get(f"/messages/{message_id}")
    assert page.status_code == 200, page.text
    assert "Your order, Ann" in page.text
    assert "your order A-1 has shipped." in page.text
