"""SMS, WhatsApp and voice through any Twilio-compatible HTTP API (the real one or Herald's simulator)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import ClassVar
from xml.sax.saxutils import escape

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.channels.base import (
    Channel,
    ChannelProvider,
    MessageRejected,
    ProviderEvent,
    ProviderFailure,
    Receipt,
    RenderedMessage,
)
from herald.channels.twilio_callbacks import CALL_STATUS, MESSAGE_STATUS, REFERENCE_PARAM, parse_status_callback
from herald.channels.twilio_client import TwilioApi, TwilioRecord
from herald.core.clock import Clock, SystemClock

MAX_TWIML_CHARS = 4000
# Twilio's clock and ours may disagree; look this far before the attempt when reconciling.
CLOCK_SKEW = dt.timedelta(minutes=5)


class TwilioSettings(BaseSettings):
    """One Twilio account (or simulator); read from HERALD_TWILIO_* or passed explicitly."""

    model_config = SettingsConfigDict(env_prefix="HERALD_TWILIO_", extra="ignore")

    base_url: str = Field(default="https://api.twilio.com", description="Point at the simulator in tests.")
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: SecretStr
    status_callback_url: str = Field(description="Public URL Twilio posts status changes to.")
    from_number: str | None = Field(default=None, description="E.164 sender for SMS and voice.")
    whatsapp_from: str | None = Field(default=None, description="E.164 WhatsApp sender; default from_number.")
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=15.0, gt=0)


class _TwilioProvider:
    """What the three Twilio channels share: the account, the HTTP edge, callbacks and reconciliation."""

    name: str
    channel: Channel
    resource: ClassVar[str]  # "Messages" or "Calls"
    capabilities: ClassVar[frozenset[str]]
    # A long code's rate; raise it for short codes/services. Enforced per worker process (delivery/throttle.py).
    rate_limit_per_second: float | None = 1.0
    required_settings: ClassVar[tuple[str, ...]] = ("account_sid", "auth_token", "status_callback_url")

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self._owns_client = client is None
        timeout = httpx.Timeout(settings.read_timeout_seconds, connect=settings.connect_timeout_seconds)
        self._client = client or httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=20))
        self._api = TwilioApi(
            self._client,
            base_url=settings.base_url,
            account_sid=settings.account_sid,
            auth_token=settings.auth_token.get_secret_value(),
            provider=self.name,
            clock=self._clock,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- sending -------------------------------------------------------------------------------------

    async def send(self, message: RenderedMessage) -> Receipt:
        """Submit once: no retry here, the ledger decides (RELIABILITY §1.4)."""
        record = await self._api.create(self.resource, self.build_form(message))
        return Receipt(
            reference=message.reference,
            provider=self.name,
            provider_message_id=record.sid,
            status=record.status,
            accepted_at=self._clock.now(),
        )

    def build_form(self, message: RenderedMessage) -> list[tuple[str, str]]:
        raise NotImplementedError

    def callback_url(self, reference: str) -> str:
        url = httpx.URL(self.settings.status_callback_url)
        return str(url.copy_merge_params({REFERENCE_PARAM: reference}))

    def _sender(self, message: RenderedMessage, configured: str | None) -> str:
        sender = message.sender or configured
        if not sender:
            raise ProviderFailure(f"{self.name}: no sender configured", provider=self.name)
        return sender

    # --- reconciliation ------------------------------------------------------------------------------

    async def fetch(self, provider_message_id: str) -> TwilioRecord | None:
        """The provider's current view of one message or call, or None if it does not exist."""
        return await self._api.fetch(self.resource, provider_message_id)

    async def find_submissions(self, message: RenderedMessage, *, since: dt.datetime) -> tuple[TwilioRecord, ...]:
        """Find what an ambiguous attempt may have created: same To/From, created after `since`, same body.

        Twilio has no client reference field, so this lists by recipient (newest first) and stops at the
        first record older than `since` minus the clock skew allowance (WIRE-FORMATS §1, recovery).
        """
        form = dict(self.build_form(message))
        filters = {"To": form["To"]} | ({"From": form["From"]} if "From" in form else {})
        records = await self._api.list_since(self.resource, filters, since - CLOCK_SKEW)
        return tuple(record for record in records if self._same_content(record, form))

    def _same_content(self, record: TwilioRecord, form: Mapping[str, str]) -> bool:
        return "Body" not in form or record.body == form["Body"]

    # --- callbacks -----------------------------------------------------------------------------------

    def parse_callback(self, url: str, headers: Mapping[str, str], body: bytes) -> Sequence[ProviderEvent]:
        """Verify X-Twilio-Signature over the exact public URL and form, then map the status."""
        token = self.settings.auth_token.get_secret_value()
        return parse_status_callback(provider=self.name, auth_token=token, url=url, headers=headers, body=body)


class TwilioSmsProvider(_TwilioProvider):
    name = "twilio_sms"
    channel = Channel.SMS
    resource = "Messages"
    capabilities = frozenset({"text", "status_callbacks", "lookup"})

    def build_form(self, message: RenderedMessage) -> list[tuple[str, str]]:
        if not message.body:
            raise MessageRejected("an SMS needs a body", provider=self.name)
        form = [("To", message.to), ("Body", message.body)]
        form += self._from_fields(message, self.settings.from_number)
        return [*form, ("StatusCallback", self.callback_url(message.reference))]

    def _from_fields(self, message: RenderedMessage, configured: str | None) -> list[tuple[str, str]]:
        if message.sender or configured or not self.settings.messaging_service_sid:
            return [("From", self._sender(message, configured))]
        return [("MessagingServiceSid", self.settings.messaging_service_sid)]


def _whatsapp(address: str) -> str:
    return address if address.startswith("whatsapp:") else f"whatsapp:{address}"


class TwilioWhatsAppProvider(TwilioSmsProvider):
    name = "twilio_whatsapp"
    channel = Channel.WHATSAPP
    capabilities = frozenset({"text", "templates", "read_receipts", "status_callbacks", "lookup"})

    def build_form(self, message: RenderedMessage) -> list[tuple[str, str]]:
        sender = self._sender(message, self.settings.whatsapp_from or self.settings.from_number)
        form = [("To", _whatsapp(message.to)), ("From", _whatsapp(sender))]
        content_sid = message.metadata.get("twilio_content_sid")
        if content_sid:
            # Outside the 24 h window only an approved template goes through (error 63016).
            form.append(("ContentSid", content_sid))
            variables = message.metadata.get("twilio_content_variables")
            form += [("ContentVariables", variables)] if variables else []
        elif message.body:
            form.append(("Body", message.body))
        else:
            raise MessageRejected("a WhatsApp message needs a body or a template", provider=self.name)
        return [*form, ("StatusCallback", self.callback_url(message.reference))]


class TwilioVoiceProvider(_TwilioProvider):
    name = "twilio_voice"
    channel = Channel.VOICE
    resource = "Calls"
    capabilities = frozenset({"text_to_speech", "status_callbacks", "lookup"})
    call_events: ClassVar[tuple[str, ...]] = ("initiated", "ringing", "answered", "completed")

    def build_form(self, message: RenderedMessage) -> list[tuple[str, str]]:
        if not message.body:
            raise MessageRejected("a voice call needs text to say", provider=self.name)
        twiml = f"<Response><Say>{escape(message.body)}</Say></Response>"
        if len(twiml) > MAX_TWIML_CHARS:
            raise MessageRejected(f"TwiML exceeds {MAX_TWIML_CHARS} characters", provider=self.name)
        form = [
            ("To", message.to),
            ("From", self._sender(message, self.settings.from_number)),
            ("Twiml", twiml),
            ("StatusCallback", self.callback_url(message.reference)),
            ("StatusCallbackMethod", "POST"),
        ]
        return form + [("StatusCallbackEvent", event) for event in self.call_events]

    def _same_content(self, record: TwilioRecord, form: Mapping[str, str]) -> bool:
        return True  # a Call resource does not echo its TwiML; recipient, sender and time must do


PROVIDERS: tuple[type[_TwilioProvider], ...] = (TwilioSmsProvider, TwilioWhatsAppProvider, TwilioVoiceProvider)


def build_providers(
    settings: TwilioSettings, *, client: httpx.AsyncClient, clock: Clock | None = None
) -> tuple[ChannelProvider, ...]:
    """All three channels on one account, sharing one connection pool (the caller closes `client`)."""
    return tuple(cls(settings, client=client, clock=clock) for cls in PROVIDERS)


__all__ = [
    "CALL_STATUS",
    "MESSAGE_STATUS",
    "PROVIDERS",
    "REFERENCE_PARAM",
    "TwilioRecord",
    "TwilioSettings",
    "TwilioSmsProvider",
    "TwilioVoiceProvider",
    "TwilioWhatsAppProvider",
    "build_providers",
]
