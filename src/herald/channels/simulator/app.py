"""The simulator's ASGI app: Twilio's REST subset Herald uses, plus the /_sim control endpoints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from herald.channels.simulator import control as sim_control
from herald.channels.simulator import rest
from herald.channels.simulator.callbacks import CallbackSender
from herald.channels.simulator.context import API, ConnectionControl, Simulator
from herald.channels.simulator.state import SimulatorConfig
from herald.core.clock import Clock, SystemClock

Handler = Callable[[Request, str], Awaitable[Response]]


def _bound(handler: Handler, resource: str) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(request, resource)

    return endpoint


def create_app(
    config: SimulatorConfig,
    *,
    control: ConnectionControl | None = None,
    clock: Clock | None = None,
) -> Starlette:
    """Build the simulator app; `control` (the server) enables the reset and refuse faults."""
    sim = Simulator(config=config, clock=clock or SystemClock(), control=control)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as client:
            sim.callbacks = CallbackSender(sim.config, sim.clock, client)
            try:
                yield
            finally:
                await sim.callbacks.aclose()

    routes = [
        route
        for resource in ("Messages", "Calls")
        for route in (
            Route(f"{API}/{resource}.json", _bound(rest.create, resource), methods=["POST"]),
            Route(f"{API}/{resource}.json", _bound(rest.list_resource, resource), methods=["GET"]),
            Route(f"{API}/{resource}/{{sid}}.json", _bound(rest.fetch, resource), methods=["GET"]),
        )
    ]
    routes += [
        Route("/_sim/faults", sim_control.faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/requests", sim_control.requests_log, methods=["GET"]),
        Route("/_sim/callbacks", sim_control.callbacks_log, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = sim
    return app
