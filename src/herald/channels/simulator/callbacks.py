"""Status progressions after acceptance, and the signed status callbacks that report them."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import urldefrag, urlencode

import httpx

from herald.channels.simulator.faults import FaultKind, FaultRule
from herald.channels.simulator.state import SimulatorConfig, Submission, rfc2822
from herald.channels.twilio_client import API_VERSION
from herald.channels.twilio_signature import SIGNATURE_HEADER, compute_signature
from herald.core.clock import Clock

# Which StatusCallbackEvent asks for which CallStatus; `completed` covers every terminal status.
_CALL_EVENT_OF = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}
_DLR_STATUSES = {"delivered", "undelivered"}


def message_steps(fault: FaultRule | None) -> list[tuple[str, int | None]]:
    """(MessageStatus, ErrorCode) after `queued`; the initial status is never called back."""
    if fault is not None and fault.kind is FaultKind.FAILED:
        return [("failed", fault.error_code())]
    if fault is not None and fault.kind is FaultKind.UNDELIVERED:
        return [("sent", None), ("undelivered", fault.error_code())]
    return [("sent", None), ("delivered", None)]


def call_steps(fault: FaultRule | None) -> list[str]:
    """CallStatus values after `queued`."""
    if fault is not None and fault.kind is FaultKind.FAILED:
        return ["initiated", fault.call_status or "failed"]
    if fault is not None and fault.kind is FaultKind.UNDELIVERED:
        return ["initiated", "ringing", fault.call_status or "no-answer"]
    return ["initiated", "ringing", "in-progress", "completed"]


def _message_params(sub: Submission, status: str, code: int | None, now: dt.datetime) -> list[tuple[str, str]]:
    params = [
        ("AccountSid", sub.account_sid),
        ("ApiVersion", API_VERSION),
        ("From", sub.sender or ""),
        ("MessageSid", sub.sid),
        ("MessageStatus", status),
        ("SmsSid", sub.sid),
        ("SmsStatus", status),
        ("To", sub.to),
    ]
    if sub.messaging_service_sid:
        params.append(("MessagingServiceSid", sub.messaging_service_sid))
    if code is not None:
        params.append(("ErrorCode", str(code)))
    if status in _DLR_STATUSES and not sub.to.startswith("whatsapp:"):
        params.append(("RawDlrDoneDate", now.strftime("%y%m%d%H%M")))
    return params


def _call_params(sub: Submission, status: str, sequence: int, now: dt.datetime) -> list[tuple[str, str]]:
    params = [
        ("AccountSid", sub.account_sid),
        ("ApiVersion", API_VERSION),
        ("CallSid", sub.sid),
        ("CallStatus", status),
        ("CallbackSource", "call-progress-events"),
        ("Direction", "outbound-api"),
        ("From", sub.sender or ""),
        ("SequenceNumber", str(sequence)),
        ("Timestamp", rfc2822(now) or ""),
        ("To", sub.to),
    ]
    if status == "completed":
        params.append(("CallDuration", "3"))
    return params


class CallbackSender:
    """Moves each submission through its statuses in the background and posts signed callbacks."""

    def __init__(self, config: SimulatorConfig, clock: Clock, client: httpx.AsyncClient) -> None:
        self._config = config
        self._clock = clock
        self._client = client
        self._tasks: set[asyncio.Task[None]] = set()
        self.delivered: list[dict[str, Any]] = []

    def schedule(self, sub: Submission, fault: FaultRule | None) -> None:
        work = self._run_call(sub, fault) if sub.resource == "Calls" else self._run_message(sub, fault)
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run_message(self, sub: Submission, fault: FaultRule | None) -> None:
        for status, code in message_steps(fault):
            await asyncio.sleep(self._config.callback_delay_seconds)
            now = self._advance(sub, status)
            sub.error_code = code
            await self._post(sub.status_callback, _message_params(sub, status, code, now))

    async def _run_call(self, sub: Submission, fault: FaultRule | None) -> None:
        for sequence, status in enumerate(call_steps(fault)):
            await asyncio.sleep(self._config.callback_delay_seconds)
            now = self._advance(sub, status)
            wanted = _CALL_EVENT_OF.get(status, "completed")
            if wanted in sub.callback_events:
                await self._post(sub.status_callback, _call_params(sub, status, sequence, now))

    def _advance(self, sub: Submission, status: str) -> dt.datetime:
        now = self._clock.now()
        sub.status, sub.updated = status, now
        if status in {"sent", "in-progress"} and sub.sent is None:
            sub.sent = now
        return now

    async def _post(self, url: str | None, params: list[tuple[str, str]]) -> None:
        if not url:
            return
        # Connection-override fragments (#rc=…) are instructions to Twilio, not part of the request.
        target = urldefrag(url).url
        signature = compute_signature(target, params, self._config.auth_token)
        record: dict[str, Any] = {"url": target, "params": params, "signature": signature}
        try:
            response = await self._client.post(
                target,
                content=urlencode(params).encode("utf-8"),
                headers={"Content-Type": "application/x-www-form-urlencoded", SIGNATURE_HEADER: signature},
            )
            record["status"] = response.status_code
        except httpx.HTTPError as exc:
            # Twilio does not retry a failed callback by default; neither do we.
            record["error"] = repr(exc)
        self.delivered.append(record)
