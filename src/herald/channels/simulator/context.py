"""What every simulator endpoint shares: its state, Twilio's error bodies, and the request log entry."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from herald.channels.simulator.callbacks import CallbackSender
from herald.channels.simulator.faults import FaultBook
from herald.channels.simulator.state import RequestLog, SimulatorConfig, Store
from herald.core.clock import Clock

API = "/2010-04-01/Accounts/{account}"

ERROR_TEXT = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    21201: "No 'To' number is specified",
    21205: "Url parameter is required.",
    21211: "The 'To' number {to} is not a valid phone number.",
    21213: "No 'From' number is specified",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}


class ConnectionControl(Protocol):
    """What only the server can do: drop one connection, or stop listening for a while."""

    def abort(self, client: tuple[str, int] | None) -> bool: ...

    def refuse_for(self, seconds: float) -> None: ...


def twilio_error(code: int, status: int = 400, to: str = "") -> JSONResponse:
    """Twilio's REST error body (WIRE-FORMATS §1)."""
    body = {
        "code": code,
        "message": ERROR_TEXT.get(code, "Error {code}").format(code=code, to=to),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


class Silence(Response):
    """No answer at all: optionally drop the connection first, then wait until the client goes away."""

    def __init__(self, before: Callable[[], object] | None = None) -> None:
        super().__init__()
        self._before = before

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._before is not None:
            self._before()
        while (await receive())["type"] != "http.disconnect":
            pass


@dataclass
class Simulator:
    config: SimulatorConfig
    clock: Clock
    control: ConnectionControl | None
    store: Store = field(default_factory=Store)
    faults: FaultBook = field(default_factory=FaultBook)
    log: RequestLog = field(init=False)
    callbacks: CallbackSender | None = None

    def __post_init__(self) -> None:
        self.log = RequestLog(self.config.log_path)

    def authorised(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = f"{self.config.account_sid}:{self.config.auth_token}".encode()
        return scheme.lower() == "basic" and hmac.compare_digest(f"{user}:{password}".encode(), expected)


def sim_of(request: Request) -> Simulator:
    sim: Simulator = request.app.state.sim
    return sim


def record(request: Request, status: int | None, outcome: str, form: list[tuple[str, str]], **extra: Any) -> None:
    entry = {
        "at": sim_of(request).clock.now().isoformat(),
        "method": request.method,
        "path": request.url.path,
        "query": request.url.query,
        "form": form,
        "status": status,
        "outcome": outcome,
    } | extra
    sim_of(request).log.record(entry)


async def read_form(request: Request) -> list[tuple[str, str]]:
    return parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)


def check_access(request: Request) -> JSONResponse | None:
    sim = sim_of(request)
    if not sim.authorised(request):
        return twilio_error(20003, 401)
    if request.path_params["account"] != sim.config.account_sid:
        return twilio_error(20404, 404)
    return None
