"""Every error answer in one place: the API's `{"error": {...}}` shape, the web's error page, OpenAPI docs.

The HTTP status of a HeraldError is its class's `http_status` (resolved through its bases), so the API
and the web pages cannot disagree. Paths under /api and /hooks answer JSON; every other path a page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from herald.core.errors import HeraldError
from herald.web.app import error_page

log = logging.getLogger(__name__)

JSON_PREFIXES = ("/api", "/hooks")

CODE_BY_HTTP_STATUS: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "invalid_input",
    429: "throttled",
    500: "internal_error",
    503: "service_unavailable",
}


class ErrorDetail(BaseModel):
    code: str = Field(..., description="Stable, machine-readable; see docs/errors.md.")
    message: str = Field(..., description="For people; may change between versions.")
    fields: dict[str, Any] | None = Field(None, description="Structured details of a HeraldError.")
    problems: list[dict[str, str]] | None = Field(None, description="One entry per invalid field (422).")


class ErrorBody(BaseModel):
    """The one shape of every error answer under /api."""

    error: ErrorDetail


# Every /api route can answer these: no or bad key, body too large, invalid input, our bug, storage down.
COMMON_ERROR_STATUSES = (401, 413, 422, 500, 503)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries with the error body schema, for a route or a router."""
    return {status: {"model": ErrorBody, "description": HTTPStatus(status).phrase} for status in statuses}


def wants_json(request: Request) -> bool:
    path = request.url.path
    return any(path == prefix or path.startswith(prefix + "/") for prefix in JSON_PREFIXES)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({k: v for k, v in extra.items() if v is not None})
    return {"error": error}


def error_response(
    request: Request, status_code: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """The answer for one error: JSON in the error shape under /api, the styled page elsewhere."""
    if wants_json(request):
        return JSONResponse(error_body(code, message), status_code=status_code, headers=headers)
    return error_page(request, status_code, message, headers=headers)


def exc_body(exc: HeraldError) -> dict[str, Any]:
    return {"error": exc.to_dict()}


def _herald_headers(exc: HeraldError, json: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    if exc.http_status == 401 and json:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return headers


async def _herald_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HeraldError)
    if exc.http_status >= 500:
        log.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.message)
    json = wants_json(request)
    headers = _herald_headers(exc, json)
    if json:
        return JSONResponse(exc_body(exc), status_code=exc.http_status, headers=headers)
    return error_page(request, exc.http_status, exc.message, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not wants_json(request):
        # A page URL whose path does not parse (a letter or a 30-digit number for an id) names no page.
        if errors and all(err["loc"][:1] == ("path",) for err in errors):
            return error_page(request, 404, "There is no such page.")
        return error_page(request, 422, "The request is not valid. Go back, check the form and try again.")
    problems = [{"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]} for err in errors]
    return JSONResponse(error_body("invalid_input", "The request is not valid.", problems=problems), status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = CODE_BY_HTTP_STATUS.get(status, "http_error")
    if status == 404:
        message = f"Nothing here: {request.method} {request.url.path}."
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    else:
        message = str(exc.detail)
    return error_response(request, status, code, message, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Starlette calls this from its outermost middleware and re-raises afterwards for the server.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    message = "Something went wrong on our side. It has been logged; please try again."
    return error_response(request, 500, "internal_error", message)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HeraldError, _herald_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
