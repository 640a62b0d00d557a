"""The /_sim control endpoints: set and clear faults, read the request and callback logs."""

from __future__ import annotations

import json

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from herald.channels.simulator.context import ConnectionControl, Simulator, record, sim_of
from herald.channels.simulator.faults import FaultError, parse_rule

# --- control ------------------------------------------------------------------------------------------


async def faults(request: Request) -> Response:
    sim = sim_of(request)
    if request.method == "DELETE":
        sim.faults.clear()
        record(request, 204, "faults_cleared", [])
        return Response(status_code=204)
    if request.method == "GET":
        return JSONResponse([rule.to_json() for rule in sim.faults.rules()])
    return await _add_faults(request, sim)


async def _add_faults(request: Request, sim: Simulator) -> Response:
    try:
        raw = json.loads(await request.body())
    except ValueError:
        return JSONResponse({"message": "body must be JSON"}, 400)
    items = raw if isinstance(raw, list) else [raw]
    refuse = [item for item in items if isinstance(item, dict) and item.get("kind") == "refuse"]
    try:
        rules = [parse_rule(item) for item in items if item not in refuse]
        seconds = [float(item.get("seconds", 5)) for item in refuse]
    except (FaultError, TypeError, ValueError) as exc:
        return JSONResponse({"message": str(exc)}, 400)
    if refuse and sim.control is None:
        return JSONResponse({"message": "refuse needs the simulator server"}, 501)
    for rule in rules:
        sim.faults.add(rule)
    record(request, 202, "faults_added", [], faults=items)
    task = BackgroundTask(_refuse, sim.control, max(seconds)) if refuse and sim.control else None
    return JSONResponse([rule.to_json() for rule in rules], 202, background=task)


async def _refuse(control: ConnectionControl, seconds: float) -> None:
    # Runs after the 202 is written, in the server's loop (an async task, not the thread pool).
    control.refuse_for(seconds)


async def requests_log(request: Request) -> Response:
    return JSONResponse(sim_of(request).log.entries())


async def callbacks_log(request: Request) -> Response:
    sender = sim_of(request).callbacks
    return JSONResponse(sender.delivered if sender else [])
