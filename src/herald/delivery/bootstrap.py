"""Build the ChannelRegistry from settings: SMTP or Maildir, Twilio or the embedded simulator, signed webhooks."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from herald.channels.base import ChannelProvider
from herald.channels.maildir import MaildirEmailProvider
from herald.channels.postfix_log import PostfixLog
from herald.channels.registry import ChannelRegistry
from herald.channels.simulator import DEFAULT_ACCOUNT_SID, SimulatorConfig, SimulatorServer
from herald.channels.smtp import SmtpConfig, SmtpEmailProvider, SmtpSecurity
from herald.channels.twilio import TwilioSettings, build_providers
from herald.channels.webhook import SignedWebhookProvider, WebhookConfig
from herald.core.clock import Clock
from herald.core.settings import Settings
from herald.db.runtime import Runtime, instance_secret
from herald.delivery.reconcile import AcceptanceLog
from herald.delivery.settings import DeliverySettings
from herald.delivery.wire_marks import WireMarks, marks_root

log = logging.getLogger(__name__)
SIMULATOR_FROM = "+15005550006"  # Twilio's magic "valid sender" number
CALLBACK_PATH = "/hooks/twilio/status"
SIMULATOR_TOKEN_SECRET = "simulator_auth_token"  # noqa: S105 — the name of the row, not a token


@dataclass
class Providers:
    """The registry plus what must be closed with it (HTTP pools, SMTP connections, the embedded simulator),
    and the relay logs that can reconcile a provider's unknown outcomes (by provider name)."""

    registry: ChannelRegistry
    relay_logs: dict[str, AcceptanceLog] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    simulator_url: str | None = None

    async def aclose(self) -> None:
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()
        self.stack.close()


def public_url(settings: Settings, delivery: DeliverySettings) -> str:
    return (delivery.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def twilio_configured() -> bool:
    return bool(os.environ.get("HERALD_TWILIO_ACCOUNT_SID") or os.environ.get("HERALD_TWILIO_BASE_URL"))


def simulator_auth_token(engine: sa.Engine) -> str:
    """This installation's simulator token: random, made on first use, kept in the database (instance_secrets),
    so the API, every worker and `herald simulator` agree on it and backups carry it."""
    return instance_secret(engine, SIMULATOR_TOKEN_SECRET)  # concurrent first uses: the first insert wins


def twilio_settings(runtime: Runtime, delivery: DeliverySettings, base_url: str | None = None) -> TwilioSettings:
    """HERALD_TWILIO_* where set; the simulator's account, this installation's token and sender where not."""
    defaults: dict[str, str] = {
        "account_sid": DEFAULT_ACCOUNT_SID,
        "status_callback_url": public_url(runtime.settings, delivery) + CALLBACK_PATH,
        "from_number": SIMULATOR_FROM,
    }
    if "HERALD_TWILIO_AUTH_TOKEN" not in os.environ:
        defaults["auth_token"] = simulator_auth_token(runtime.engine)
    if base_url is not None:
        defaults["base_url"] = base_url
    given = {k: v for k, v in defaults.items() if f"HERALD_TWILIO_{k.upper()}" not in os.environ}
    return TwilioSettings(**given)  # type: ignore[arg-type]


def email_provider(
    settings: Settings,
    delivery: DeliverySettings,
    clock: Clock,
    concurrency: int,
    wire_marks: WireMarks | None = None,
) -> ChannelProvider:
    if not delivery.smtp_host:
        return MaildirEmailProvider(settings.data_dir / "maildir", clock, default_sender=delivery.email_from)
    config = SmtpConfig(
        host=delivery.smtp_host,
        port=delivery.smtp_port,
        security=SmtpSecurity(delivery.smtp_security),
        username=delivery.smtp_username,
        password=delivery.smtp_password,
        default_sender=delivery.email_from,
        pool_size=delivery.smtp_pool_size or max(1, concurrency),
    )
    return SmtpEmailProvider(config, clock, wire_marks=wire_marks)


def wire_marks(settings: Settings, delivery: DeliverySettings, clock: Clock, worker_id: str) -> WireMarks:
    """The sending worker's mark file (one per worker id), made before it claims anything; old files of
    stopped workers are pruned on the way."""
    keep = dt.timedelta(hours=delivery.wire_marks_keep_hours)
    root = marks_root(settings.data_dir, delivery.wire_marks_dir)
    return WireMarks(root, worker_id, keep=keep, now=clock.now())


def _start_simulator(providers: Providers, delivery: DeliverySettings, auth_token: str) -> str:
    server = SimulatorServer(SimulatorConfig(auth_token=auth_token), port=delivery.simulator_port)
    providers.stack.enter_context(server.in_thread())
    log.warning("no Twilio account configured: SMS/WhatsApp/voice go to the embedded simulator at %s", server.base_url)
    return server.base_url


def build_registry(
    runtime: Runtime, delivery: DeliverySettings, *, concurrency: int = 1, worker_id: str | None = None
) -> Providers:
    """E-mail first, then SMS, WhatsApp, voice, webhook: one provider per channel, registered explicitly.
    With `worker_id` (a sending worker), an SMTP relay gets that worker's wire marks."""
    settings, clock = runtime.settings, runtime.clock
    providers = Providers(ChannelRegistry())
    marks = None
    if delivery.smtp_host and worker_id is not None:
        marks = wire_marks(settings, delivery, clock, worker_id)
        providers.stack.callback(marks.close)
    email = email_provider(settings, delivery, clock, concurrency, marks)
    providers.registry.register(email)
    if isinstance(email, SmtpEmailProvider):
        providers.closers.append(email.aclose)
        if delivery.smtp_reconcile_log:
            settle = dt.timedelta(seconds=delivery.smtp_reconcile_settle_seconds)
            providers.relay_logs[email.name] = PostfixLog(Path(delivery.smtp_reconcile_log), settle=settle)
    base_url = None
    if not twilio_configured() and delivery.embedded_simulator:
        token = simulator_auth_token(runtime.engine)
        base_url = providers.simulator_url = _start_simulator(providers, delivery, token)
    if twilio_configured() or base_url is not None:
        client = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
        providers.closers.append(client.aclose)
        for provider in build_providers(twilio_settings(runtime, delivery, base_url), client=client, clock=clock):
            providers.registry.register(provider)
    secrets = tuple(s.strip() for s in delivery.webhook_secrets.split(",") if s.strip())
    if secrets:
        private = delivery.webhook_allow_private
        config = WebhookConfig(
            secrets=secrets,
            allow_private=private,
            allowed_schemes=frozenset({"https", "http"}) if private else frozenset({"https"}),
            allowed_ports=None if private else frozenset({443, 8443}),
        )
        hook = SignedWebhookProvider(config, clock)
        providers.registry.register(hook)
        providers.closers.append(hook.aclose)
    return providers
