"""The one place that maps HeraldError codes to HTTP statuses, and the one error body shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from herald.core.errors import HeraldError

STATUS_BY_CODE: dict[str, int] = {
    "not_found": 404,
    "invalid_input": 422,
    "conflict": 409,
    "unauthorized": 401,
    "forbidden": 403,
    "database_not_migrated": 503,
    "backup_verification_failed": 500,
    "idempotency_conflict": 409,
    "idempotency_key_required": 400,
    "template_invalid": 422,
    "template_unsafe": 422,
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({k: v for k, v in extra.items() if v is not None})
    return {"error": error}


async def _herald_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HeraldError)
    status = STATUS_BY_CODE.get(exc.code, 400)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(exc_body(exc), status_code=status, headers=headers)


def exc_body(exc: HeraldError) -> dict[str, Any]:
    return {"error": exc.to_dict()}


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]} for err in exc.errors()
    ]
    return JSONResponse(error_body("invalid_input", "The request is not valid.", problems=problems), status_code=422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HeraldError, _herald_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
