"""Request dependencies: the runtime and the API-key check shared by every /api route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from herald.apikeys.service import check_key
from herald.core.errors import UnauthorizedError
from herald.db.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="An API key from `herald apikey create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_api_key(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> int:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Send an API key as `Authorization: Bearer <key>`.")
    return check_key(runtime.engine, credentials.credentials)


ApiKeyDep = Annotated[int, Depends(require_api_key)]
