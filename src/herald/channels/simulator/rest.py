"""The Twilio REST subset: create, fetch and list Messages and Calls, with faults applied on create."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from herald.channels.simulator.context import (
    Silence,
    Simulator,
    check_access,
    read_form,
    record,
    sim_of,
    twilio_error,
)
from herald.channels.simulator.faults import MAGIC_NUMBERS, FaultKind, FaultRule
from herald.channels.simulator.state import Submission, new_sid

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MAX_BODY = 1600
MAX_PAGE_SIZE = 1000
SERVICE_SENDER = "+15005550006"  # what a Messaging Service "picks from its pool" here

# --- create -------------------------------------------------------------------------------------------


def _invalid_message(fields: dict[str, str]) -> JSONResponse | None:
    to = fields.get("To", "")
    if not to:
        return twilio_error(21604)
    if not E164.match(to.removeprefix("whatsapp:")):
        return twilio_error(21211, to=to)
    if not fields.get("From") and not fields.get("MessagingServiceSid"):
        return twilio_error(21603)
    if not any(fields.get(name) for name in ("Body", "MediaUrl", "ContentSid")):
        return twilio_error(21602)
    if len(fields.get("Body", "")) > MAX_BODY:
        return twilio_error(21617)
    return None


def _invalid_call(fields: dict[str, str]) -> JSONResponse | None:
    to = fields.get("To", "")
    if not to:
        return twilio_error(21201)
    if not E164.match(to):
        return twilio_error(21211, to=to)
    if not fields.get("From"):
        return twilio_error(21213)
    if not fields.get("Twiml") and not fields.get("Url"):
        return twilio_error(21205)
    return None


def _overload(fault: FaultRule | None) -> JSONResponse | None:
    """Answers that come before any processing: 429s are "never processed and always safe to retry"."""
    if fault is not None and fault.kind is FaultKind.RATE_LIMIT:
        response = twilio_error(20429, 429)
        response.headers["Retry-After"] = fault.retry_after or "1"
        return response
    if fault is not None and fault.kind is FaultKind.SERVER_ERROR:
        status = fault.status or 500
        return JSONResponse({"code": 20500, "message": "Internal Server Error", "status": status}, status)
    return None


def _rejection(fault: FaultRule | None, to: str) -> JSONResponse | None:
    """Scripted rejections and magic numbers: valid input the provider still refuses."""
    if fault is not None and fault.kind is FaultKind.REJECT:
        return twilio_error(fault.error_code() or 21211, fault.status or 400, to=to)
    magic = MAGIC_NUMBERS.get(to.removeprefix("whatsapp:"))
    return twilio_error(magic, 400, to=to) if magic is not None else None


def _submission(sim: Simulator, resource: str, fields: dict[str, str], events: tuple[str, ...]) -> Submission:
    now = sim.clock.now()
    return Submission(
        resource=resource,
        sid=new_sid("CA" if resource == "Calls" else "SM"),
        account_sid=sim.config.account_sid,
        to=fields["To"],
        sender=fields.get("From") or SERVICE_SENDER,
        body=fields.get("Body"),
        status="queued",
        created=now,
        updated=now,
        messaging_service_sid=fields.get("MessagingServiceSid"),
        status_callback=fields.get("StatusCallback"),
        callback_events=events or ("completed",),
    )


async def create(request: Request, resource: str) -> Response:
    form = await read_form(request)
    denied = check_access(request)
    if denied is not None:
        record(request, denied.status_code, "denied", form)
        return denied
    sim, fields = sim_of(request), dict(form)
    fault = sim.faults.take(resource, fields.get("To", ""))
    fault_name = fault.kind.value if fault else None
    if fault is not None and fault.kind is FaultKind.HANG:
        record(request, None, "hang", form, fault=fault_name)
        return Silence()
    validate = _invalid_call if resource == "Calls" else _invalid_message
    invalid = _overload(fault) or validate(fields) or _rejection(fault, fields.get("To", ""))
    if invalid is not None:
        record(request, invalid.status_code, "error", form, fault=fault_name)
        return invalid
    return _accept(request, sim, resource, form, fault)


def _accept(
    request: Request, sim: Simulator, resource: str, form: list[tuple[str, str]], fault: FaultRule | None
) -> Response:
    events = tuple(value for name, value in form if name == "StatusCallbackEvent")
    sub = _submission(sim, resource, dict(form), events)
    sim.store.add(sub)
    if sim.callbacks is not None:
        sim.callbacks.schedule(sub, fault)
    if fault is not None and fault.kind is FaultKind.RESET:
        if sim.control is None:
            record(request, 500, "reset_unsupported", form, sid=sub.sid, submitted=True, fault="reset")
            return JSONResponse({"message": "reset needs the simulator server"}, 500)
        record(request, None, "reset", form, sid=sub.sid, submitted=True, fault="reset")
        control, client = sim.control, request.client
        return Silence(before=lambda: control.abort((client.host, client.port) if client else None))
    record(request, 201, "created", form, sid=sub.sid, submitted=True, fault=fault.kind.value if fault else None)
    return JSONResponse(sub.to_json(), status_code=201)


# --- read ---------------------------------------------------------------------------------------------


async def fetch(request: Request, resource: str) -> Response:
    denied = check_access(request)
    found = None if denied else sim_of(request).store.get(resource, request.path_params["sid"])
    response = denied or (JSONResponse(found.to_json()) if found else twilio_error(20404, 404))
    record(request, response.status_code, "fetched" if found else "error", [])
    return response


def _number(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(raw or default), low), high)
    except ValueError:
        return default


async def list_resource(request: Request, resource: str) -> Response:
    denied = check_access(request)
    if denied is not None:
        record(request, denied.status_code, "denied", [])
        return denied
    query = request.query_params
    filters = {name: query[name] for name in ("To", "From") if name in query}
    size = _number(query.get("PageSize"), 50, 1, MAX_PAGE_SIZE)
    page = _number(query.get("Page"), 0, 0, 10**6)
    matches = sim_of(request).store.newest_first(resource, filters)
    chosen = matches[page * size : (page + 1) * size]
    here = request.url.path + "?" + urlencode(filters | {"PageSize": str(size)})
    body = {
        resource.lower(): [sub.to_json() for sub in chosen],
        "page": page,
        "page_size": size,
        "start": page * size,
        "end": page * size + max(len(chosen) - 1, 0),
        "uri": f"{here}&Page={page}",
        "first_page_uri": f"{here}&Page=0",
        "previous_page_uri": f"{here}&Page={page - 1}" if page > 0 else None,
        "next_page_uri": f"{here}&Page={page + 1}" if len(matches) > (page + 1) * size else None,
    }
    record(request, 200, "listed", [])
    return JSONResponse(body)
