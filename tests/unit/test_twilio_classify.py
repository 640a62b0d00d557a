"""Pure Twilio adapter logic: response classification, request forms, and callback mapping."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from herald.channels.base import (
    Channel,
    EventKind,
    MessageRejected,
    OutcomeUnknown,
    ProviderFailure,
    RateLimited,
    RenderedMessage,
    SignatureError,
)
from herald.channels.twilio import TwilioSettings, TwilioSmsProvider, TwilioVoiceProvider, TwilioWhatsAppProvider
from herald.channels.twilio_errors import error_for_response, error_for_transport, retry_after_seconds
from herald.channels.twilio_signature import compute_signature

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TOKEN = "tok" * 10
SETTINGS = TwilioSettings(
    account_sid="AC" + "1" * 32,
    auth_token=TOKEN,  # type: ignore[arg-type]
    status_callback_url="https://hub.example.com/hooks/twilio?x=1",
    from_number="+15005550006",
)


def _response(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    content = json.dumps(body).encode() if body is not None else b"oops"
    return httpx.Response(status, content=content, headers=headers)


def _twilio_error(code: int, status: int = 400) -> httpx.Response:
    return _response(status, {"code": code, "message": "m", "more_info": "", "status": status})


@pytest.mark.parametrize(
    ("response", "kind", "code"),
    [
        (_twilio_error(21211), MessageRejected, "21211"),
        (_twilio_error(21610), MessageRejected, "21610"),
        (_twilio_error(21614), MessageRejected, "21614"),
        (_twilio_error(63016), MessageRejected, "63016"),
        (_twilio_error(20003, 401), ProviderFailure, "20003"),
        (_twilio_error(21408), ProviderFailure, "21408"),
        (_twilio_error(29999), ProviderFailure, "29999"),
        (_response(404), ProviderFailure, "404"),
        (_response(500), ProviderFailure, "500"),
        (_response(503), ProviderFailure, "503"),
    ],
)
def test_error_responses_are_classified(response: httpx.Response, kind: type[Exception], code: str) -> None:
    error = error_for_response(response, provider="twilio_sms", now=NOW)
    assert type(error) is kind
    assert error.code == code
    assert error.provider == "twilio_sms"


def test_429_and_503_with_retry_after_are_rate_limits() -> None:
    limited = error_for_response(_response(429, {"code": 20429}, {"Retry-After": "7"}), provider="p", now=NOW)
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7.0
    assert limited.code == "20429"
    busy = error_for_response(_response(503, {"code": 20503}, {"Retry-After": "2"}), provider="p", now=NOW)
    assert isinstance(busy, RateLimited)
    assert busy.retry_after == 2.0
    bare = error_for_response(_response(429), provider="p", now=NOW)
    assert isinstance(bare, RateLimited)
    assert bare.retry_after is None


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert retry_after_seconds("12", NOW) == 12.0
    assert retry_after_seconds("Sun, 01 Mar 2026 12:00:30 GMT", NOW) == 30.0
    assert retry_after_seconds("Sun, 01 Mar 2026 11:00:00 GMT", NOW) == 0.0
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("refused"), ProviderFailure),
        (httpx.ConnectTimeout("slow connect"), ProviderFailure),
        (httpx.PoolTimeout("pool"), ProviderFailure),
        (httpx.ReadTimeout("slow answer"), OutcomeUnknown),
        (httpx.WriteTimeout("slow write"), OutcomeUnknown),
        (httpx.ReadError("reset"), OutcomeUnknown),
        (httpx.RemoteProtocolError("closed"), OutcomeUnknown),
    ],
)
def test_transport_errors_split_on_whether_the_request_left(exc: httpx.HTTPError, kind: type[Exception]) -> None:
    assert type(error_for_transport(exc, provider="p")) is kind


@pytest.fixture
async def sms() -> AsyncIterator[TwilioSmsProvider]:
    provider = TwilioSmsProvider(SETTINGS)
    yield provider
    await provider.aclose()


def _msg(channel: Channel, body: str | None = "Hello", **metadata: str) -> RenderedMessage:
    return RenderedMessage(reference="att-1", channel=channel, to="+15551230000", body=body, metadata=metadata)


async def test_sms_form_carries_the_reference_in_the_callback_url(sms: TwilioSmsProvider) -> None:
    form = dict(sms.build_form(_msg(Channel.SMS)))
    assert form["To"] == "+15551230000"
    assert form["From"] == "+15005550006"
    assert form["Body"] == "Hello"
    assert form["StatusCallback"] == "https://hub.example.com/hooks/twilio?x=1&hub_msg=att-1"
    with pytest.raises(MessageRejected):
        sms.build_form(_msg(Channel.SMS, body=None))


async def test_messaging_service_is_used_when_no_sender_is_set() -> None:
    service = "MG" + "2" * 32
    provider = TwilioSmsProvider(SETTINGS.model_copy(update={"from_number": None, "messaging_service_sid": service}))
    form = dict(provider.build_form(_msg(Channel.SMS)))
    await provider.aclose()
    assert form["MessagingServiceSid"] == service
    assert "From" not in form


async def test_whatsapp_prefixes_both_addresses_and_prefers_a_template() -> None:
    provider = TwilioWhatsAppProvider(SETTINGS)
    plain = dict(provider.build_form(_msg(Channel.WHATSAPP)))
    template = dict(
        provider.build_form(
            _msg(Channel.WHATSAPP, twilio_content_sid="HX" + "3" * 32, twilio_content_variables='{"1":"Ada"}')
        )
    )
    await provider.aclose()
    assert (plain["To"], plain["From"], plain["Body"]) == ("whatsapp:+15551230000", "whatsapp:+15005550006", "Hello")
    assert template["ContentSid"] == "HX" + "3" * 32
    assert template["ContentVariables"] == '{"1":"Ada"}'
    assert "Body" not in template


async def test_voice_escapes_the_text_and_asks_for_every_progress_event() -> None:
    provider = TwilioVoiceProvider(SETTINGS)
    form = provider.build_form(_msg(Channel.VOICE, body='Tom & Jerry <3 "now"'))
    with pytest.raises(MessageRejected):
        provider.build_form(_msg(Channel.VOICE, body="x" * 4000))
    await provider.aclose()
    assert dict(form)["Twiml"] == '<Response><Say>Tom &amp; Jerry &lt;3 "now"</Say></Response>'
    events = [value for name, value in form if name == "StatusCallbackEvent"]
    assert events == ["initiated", "ringing", "answered", "completed"]


def _signed(url: str, params: list[tuple[str, str]]) -> tuple[dict[str, str], bytes]:
    return {"x-twilio-signature": compute_signature(url, params, TOKEN)}, urlencode(params).encode()


URL = "https://hub.example.com/hooks/twilio?x=1&hub_msg=att-1"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("queued", EventKind.QUEUED),
        ("sent", EventKind.SENT),
        ("delivered", EventKind.DELIVERED),
        ("undelivered", EventKind.UNDELIVERED),
        ("failed", EventKind.FAILED),
        ("read", EventKind.READ),
    ],
)
async def test_message_callbacks_map_to_event_kinds(sms: TwilioSmsProvider, status: str, kind: EventKind) -> None:
    params = [("MessageSid", "SM" + "a" * 32), ("MessageStatus", status), ("ErrorCode", "30003")]
    headers, body = _signed(URL, params)
    (event,) = sms.parse_callback(URL, headers, body)
    assert (event.kind, event.reference, event.provider_message_id) == (kind, "att-1", "SM" + "a" * 32)
    assert event.error_code == "30003"
    assert event.raw == body


async def test_call_callbacks_map_and_carry_their_timestamp(sms: TwilioSmsProvider) -> None:
    params = [
        ("CallSid", "CA" + "b" * 32),
        ("CallStatus", "in-progress"),
        ("Timestamp", "Sun, 01 Mar 2026 12:00:05 +0000"),
    ]
    headers, body = _signed(URL, params)
    (event,) = sms.parse_callback(URL, headers, body)
    assert event.kind is EventKind.ANSWERED
    assert event.occurred_at == NOW + dt.timedelta(seconds=5)


async def test_unknown_statuses_and_inbound_messages_are_ignored(sms: TwilioSmsProvider) -> None:
    for params in ([("MessageSid", "SM1"), ("MessageStatus", "partially_delivered")], [("Body", "STOP")]):
        headers, body = _signed(URL, params)
        assert sms.parse_callback(URL, headers, body) == ()


async def test_bad_or_missing_signatures_are_refused_before_parsing(sms: TwilioSmsProvider) -> None:
    params = [("MessageSid", "SM1"), ("MessageStatus", "delivered")]
    headers, body = _signed(URL, params)
    tampered = body.replace(b"delivered", b"failed")
    assert dict(parse_qsl(tampered.decode()))["MessageStatus"] == "failed"
    with pytest.raises(SignatureError):
        sms.parse_callback(URL, headers, tampered)
    with pytest.raises(SignatureError):
        sms.parse_callback(URL.replace("att-1", "att-2"), headers, body)
    with pytest.raises(SignatureError):
        sms.parse_callback(URL, {}, body)
    with pytest.raises(SignatureError):
        sms.parse_callback(URL, headers, b"\xff\xfe")
