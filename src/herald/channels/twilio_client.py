"""The HTTP edge of the Twilio REST API: create, fetch and list, with every foreign error translated."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from herald.channels.base import OutcomeUnknown, ProviderFailure
from herald.channels.twilio_errors import error_for_response, error_for_transport
from herald.core.clock import Clock

API_VERSION = "2010-04-01"
PAGE_SIZE = 50
MAX_PAGES = 20  # reconciliation looks at recent traffic for one recipient; never walk a whole account


def parse_rfc2822(value: object) -> dt.datetime | None:
    """Twilio's dates ("Thu, 30 Jul 2015 20:12:31 +0000") as aware UTC datetimes."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


@dataclass(frozen=True, slots=True)
class TwilioRecord:
    """A Message or Call as the provider currently sees it."""

    sid: str
    status: str
    to: str | None
    sender: str | None
    body: str | None
    error_code: str | None
    date_created: dt.datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TwilioRecord:
        return cls(
            sid=str(data["sid"]),
            status=str(data.get("status") or ""),
            to=_text(data.get("to")),
            sender=_text(data.get("from")),
            body=_text(data.get("body")),
            error_code=_text(data.get("error_code")),
            date_created=parse_rfc2822(data.get("date_created")),
        )


class TwilioApi:
    """Form-encoded requests with Basic auth against one account; pooled through the injected client."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        account_sid: str,
        auth_token: str,
        provider: str,
        clock: Clock,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._account = f"/{API_VERSION}/Accounts/{account_sid}"
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._provider = provider
        self._clock = clock

    def url(self, path: str) -> str:
        return f"{self._base}{self._account}/{path}"

    async def create(self, resource: str, form: Sequence[tuple[str, str]]) -> TwilioRecord:
        """POST once; a 2xx without a readable SID is still an acceptance we cannot track: unknown."""
        try:
            response = await self._client.post(
                self.url(f"{resource}.json"),
                content=urlencode(form).encode("utf-8"),
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                auth=self._auth,
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, provider=self._provider) from exc
        if not response.is_success:
            raise error_for_response(response, provider=self._provider, now=self._clock.now())
        try:
            return TwilioRecord.from_json(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise OutcomeUnknown(
                f"Twilio accepted (HTTP {response.status_code}) without a readable SID", provider=self._provider
            ) from exc

    async def fetch(self, resource: str, sid: str) -> TwilioRecord | None:
        response = await self._get(self.url(f"{resource}/{sid}.json"))
        if response.status_code == 404:
            return None
        return TwilioRecord.from_json(self._json(response))

    async def list_since(self, resource: str, filters: Mapping[str, str], oldest: dt.datetime) -> list[TwilioRecord]:
        """Records matching the filters, newest first, down to the first one created before `oldest`."""
        key = resource.lower()
        url: str | None = self.url(f"{resource}.json?" + urlencode({**filters, "PageSize": PAGE_SIZE}))
        found: list[TwilioRecord] = []
        for _ in range(MAX_PAGES):
            if url is None:
                break
            page = self._json(await self._get(url))
            for item in page.get(key) or []:
                record = TwilioRecord.from_json(item)
                if record.date_created is not None and record.date_created < oldest:
                    return found
                found.append(record)
            next_uri = page.get("next_page_uri")
            url = f"{self._base}{next_uri}" if next_uri else None
        return found

    async def _get(self, url: str) -> httpx.Response:
        # A lookup is safe to repeat, so every failure here is plain ProviderFailure, never "unknown".
        try:
            response = await self._client.get(url, headers={"Accept": "application/json"}, auth=self._auth)
        except httpx.HTTPError as exc:
            raise ProviderFailure(f"Twilio lookup failed: {exc!r}", provider=self._provider) from exc
        if response.status_code != 404 and not response.is_success:
            error = error_for_response(response, provider=self._provider, now=self._clock.now())
            if isinstance(error, ProviderFailure):
                raise error
            raise ProviderFailure(str(error), provider=self._provider, code=error.code) from error
        return response

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderFailure("Twilio lookup answer is not JSON", provider=self._provider) from exc
        if not isinstance(data, dict):
            raise ProviderFailure("Twilio lookup answer is not an object", provider=self._provider)
        return data
