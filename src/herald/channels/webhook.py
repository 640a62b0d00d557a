"""The signed-webhook provider: Standard Webhooks signing, an SSRF-guarded POST, response classification."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpcore

from herald.channels.base import (
    Channel,
    DeliveryError,
    MessageRejected,
    OutcomeUnknown,
    ProviderEvent,
    ProviderFailure,
    RateLimited,
    Receipt,
    RenderedMessage,
    SignatureError,
)
from herald.channels.ssrf import AddressPolicy, PinnedBackend
from herald.core.clock import Clock

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's prefix, not a secret
TOLERANCE_SECONDS = 300  # what the reference libraries accept either side of now (WIRE-FORMATS.md §6)
_WEBHOOK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # the id is signed as "{id}.{ts}.{body}": no dots


def decode_secret(secret: str) -> bytes:
    """The HMAC key: the base64 after `whsec_` (unpadded accepted, as the reference libraries do)."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("webhook secret is not base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return one `v1,<base64 HMAC-SHA256>` entry over `{id}.{timestamp}.{body}`."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _signature_matches(expected: str, header: str) -> bool:
    expected_bytes = base64.b64decode(expected.partition(",")[2])
    for entry in header.split(" "):
        version, _, value = entry.partition(",")
        if version != "v1":
            continue  # unknown versions (v1a, future ones) are skipped, not failed
        try:
            candidate = base64.b64decode(value, validate=True)
        except binascii.Error:
            continue
        if hmac.compare_digest(expected_bytes, candidate):
            return True
    return False


def verify_standard_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime,
    *,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check a Standard Webhooks request; return its webhook-id or raise SignatureError."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signature = lowered.get("webhook-signature", "")
    if not (msg_id and stamp and signature):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not stamp.isdigit():
        raise SignatureError("webhook-timestamp is not an integer")
    if abs(now.timestamp() - int(stamp)) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance window")
    if not _signature_matches(sign_standard_webhook(secret, msg_id, int(stamp), body), signature):
        raise SignatureError("no webhook-signature entry matches")
    return msg_id


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    secrets: tuple[str, ...]  # all sign each request, so a rotation overlaps old and new (first = newest)
    allow_private: bool = False  # R4.10: tests only; off by default
    allow_cidrs: tuple[str, ...] = ()
    allowed_schemes: frozenset[str] = frozenset({"https"})
    allowed_ports: frozenset[int] | None = frozenset({443, 8443})  # None: any port
    connect_timeout: float = 5.0
    timeout: float = 15.0  # each read / write; the spec suggests 15-30 s
    max_response_bytes: int = 64 * 1024
    max_connections: int = 20
    user_agent: str = "Herald-Webhooks/1"


def _retry_after(value: str | None, now: dt.datetime) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def classify_status(status: int, retry_after: float | None, *, provider: str) -> DeliveryError | None:
    """None for 2xx; otherwise the delivery error that status means (Standard Webhooks delivery rules)."""
    if 200 <= status < 300:
        return None
    detail = f"webhook endpoint answered HTTP {status}"
    if status == 410:
        return MessageRejected(detail + " (gone: disable the endpoint)", provider=provider, code="410")
    if status == 429 or (status in {502, 503, 504} and retry_after is not None):
        return RateLimited(detail, retry_after=retry_after, provider=provider, code=str(status))
    # 3xx is failure too: redirects are not followed, since each hop would need its own SSRF check.
    return ProviderFailure(detail, provider=provider, code=str(status))


class SignedWebhookProvider:
    """POST `message.body` (JSON) to `message.to`, signed per Standard Webhooks, to checked addresses only."""

    channel = Channel.WEBHOOK
    rate_limit_per_second: float | None = None  # no declared limit

    def __init__(self, config: WebhookConfig, clock: Clock, *, name: str = "webhook") -> None:
        if not config.secrets:
            raise ValueError("a webhook provider needs at least one signing secret")
        for secret in config.secrets:
            if not 24 <= len(decode_secret(secret)) <= 64:
                raise ValueError("webhook secrets must be 24-64 random bytes")
        self.name = name
        self._config = config
        self._clock = clock
        policy = AddressPolicy.build(allow_private=config.allow_private, allow_cidrs=config.allow_cidrs)
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=config.max_connections,
            keepalive_expiry=5.0,  # short: a stale keep-alive that dies mid-request is an unknown outcome
            network_backend=PinnedBackend(policy),
        )

    async def send(self, message: RenderedMessage) -> Receipt:
        self._check_url(message.to)
        if message.body is None:
            raise MessageRejected("a webhook message needs a JSON body", provider=self.name, code="no_body")
        msg_id = message.metadata.get("webhook_id") or message.reference
        if not _WEBHOOK_ID.fullmatch(msg_id):
            raise MessageRejected(f"unusable webhook-id {msg_id!r}", provider=self.name, code="invalid_id")
        body = message.body.encode("utf-8")
        status, retry_after = await self._post(message.to, self._headers(msg_id, body), body)
        error = classify_status(status, retry_after, provider=self.name)
        if error is not None:
            raise error
        return Receipt(
            reference=message.reference,
            provider=self.name,
            provider_message_id=msg_id,
            status=str(status),
            accepted_at=self._clock.now(),
        )

    def parse_callback(self, url: str, headers: Mapping[str, str], body: bytes) -> Sequence[ProviderEvent]:
        # Outbound webhooks get their answer in the HTTP response; nothing calls back.
        raise SignatureError(f"provider {self.name!r} accepts no callbacks")

    async def aclose(self) -> None:
        await self._pool.aclose()

    def _check_url(self, url: str) -> None:
        cfg = self._config
        try:
            parts = urlsplit(url)
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
        except ValueError as exc:
            raise MessageRejected(f"invalid webhook URL: {exc}", provider=self.name, code="invalid_url") from exc
        if parts.scheme not in cfg.allowed_schemes or not parts.hostname or parts.username is not None:
            raise MessageRejected(f"webhook URL not allowed: {url}", provider=self.name, code="invalid_url")
        if cfg.allowed_ports is not None and port not in cfg.allowed_ports:
            raise MessageRejected(f"webhook port {port} not allowed", provider=self.name, code="invalid_url")

    def _headers(self, msg_id: str, body: bytes) -> list[tuple[str, str]]:
        timestamp = int(self._clock.now().timestamp())
        signature = " ".join(sign_standard_webhook(s, msg_id, timestamp, body) for s in self._config.secrets)
        return [
            ("Content-Type", "application/json"),
            ("User-Agent", self._config.user_agent),
            ("webhook-id", msg_id),
            ("webhook-timestamp", str(timestamp)),
            ("webhook-signature", signature),
        ]

    def _timeouts(self) -> dict[str, float]:
        cfg = self._config
        return {
            "connect": cfg.connect_timeout,
            "read": cfg.timeout,
            "write": cfg.timeout,
            "pool": cfg.timeout,
        }

    async def _post(self, url: str, headers: list[tuple[str, str]], body: bytes) -> tuple[int, float | None]:
        try:
            async with self._pool.stream(
                "POST", url, headers=headers, content=body, extensions={"timeout": self._timeouts()}
            ) as response:
                retry_after = _retry_after(_header(response.headers, b"retry-after"), self._clock.now())
                await self._drain(response)
                return response.status, retry_after
        except MessageRejected as exc:  # the SSRF guard refused the resolved address
            raise MessageRejected(str(exc), provider=self.name, code=exc.code) from exc
        except (httpcore.ConnectError, httpcore.ConnectTimeout, httpcore.PoolTimeout) as exc:
            raise ProviderFailure(f"webhook connect failed: {exc!r}", provider=self.name) from exc
        except (httpcore.WriteError, httpcore.WriteTimeout) as exc:
            # The request did not fully leave, so no complete request can have been acted on.
            raise ProviderFailure(f"webhook send failed: {exc!r}", provider=self.name) from exc
        except (httpcore.ReadError, httpcore.ReadTimeout, httpcore.RemoteProtocolError) as exc:
            raise OutcomeUnknown(f"no answer after the request was sent: {exc!r}", provider=self.name) from exc
        except (httpcore.UnsupportedProtocol, httpcore.LocalProtocolError) as exc:
            raise MessageRejected(f"webhook request invalid: {exc!r}", provider=self.name) from exc

    async def _drain(self, response: httpcore.Response) -> None:
        """Read at most max_response_bytes so the connection can be reused; the status already decided."""
        seen = 0
        try:
            async for chunk in response.aiter_stream():
                seen += len(chunk)
                if seen > self._config.max_response_bytes:
                    break
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError):
            pass


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
