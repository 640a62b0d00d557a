"""Shared pieces of the Twilio e2e tests: a callback receiver on a real socket and provider wiring."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald.channels.simulator import DEFAULT_ACCOUNT_SID, SimulatorServer
from herald.channels.twilio import TwilioSettings

# A simulator has no default token; these tests share one made for this run.
TOKEN = secrets.token_hex(16)


@dataclass(frozen=True)
class Callback:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Collects every POST it receives, exactly as it arrived."""

    base_url: str = ""
    received: list[Callback] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Callback]:
        """Wait until `count` callbacks arrived (a generous deadline, not a timing assertion)."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return list(self.received)

    def for_reference(self, reference: str) -> list[Callback]:
        return [cb for cb in self.received if f"hub_msg={reference}" in cb.url]


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in this event loop; yield its base URL."""
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="none"))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "receiver failed to start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    collected = Receiver()

    async def hook(request: Request) -> Response:
        collected.received.append(Callback(str(request.url), dict(request.headers), await request.body()))
        collected.arrived.set()
        return Response(status_code=204)

    async with serve(Starlette(routes=[Route("/hooks/twilio", hook, methods=["POST"])])) as base:
        collected.base_url = base
        yield collected


def settings_for(sim: SimulatorServer, callback_base: str, **overrides: str) -> TwilioSettings:
    values = {
        "base_url": sim.base_url,
        "account_sid": DEFAULT_ACCOUNT_SID,
        "auth_token": TOKEN,
        "status_callback_url": f"{callback_base}/hooks/twilio",
        "from_number": "+15005550006",
    } | overrides
    return TwilioSettings(**values)  # type: ignore[arg-type]


async def add_fault(sim: SimulatorServer, **rule: object) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        response = await client.post("/_sim/faults", json=rule)
        assert response.status_code == 202, response.text


async def sim_log(sim: SimulatorServer) -> list[dict[str, object]]:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        entries: list[dict[str, object]] = (await client.get("/_sim/requests")).json()
        return entries


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)
