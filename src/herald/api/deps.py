"""Request dependencies: the runtime, the API key's actor and the units of work every /api route builds."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from herald.apikeys.service import check_key
from herald.core.actor import Actor
from herald.core.errors import UnauthorizedError
from herald.db.runtime import Runtime
from herald.db.unit_of_work import UnitOfWork, unit_of_work

_bearer = HTTPBearer(auto_error=False, description="An API key from `herald apikey create`.")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_api_key(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The key the request carries, as the actor its changes are audited as (FastAPI caches it per request)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Send an API key as `Authorization: Bearer <key>`.")
    return check_key(runtime.engine, credentials.credentials, request.client.host if request.client else None)


ActorDep = Annotated[Actor, Depends(require_api_key)]


def api_key_id(actor: ActorDep) -> int:
    assert actor.id is not None  # an API key actor always carries its key's id
    return actor.id


ApiKeyDep = Annotated[int, Depends(api_key_id)]


class Work:
    """What a changing route needs: the runtime and who calls; `begin()` opens the change's unit of work."""

    def __init__(self, runtime: Runtime, actor: Actor) -> None:
        self.runtime, self.actor = runtime, actor

    def begin(self) -> AbstractContextManager[UnitOfWork]:
        return unit_of_work(self.runtime.engine, self.runtime.clock, self.actor)


def get_work(runtime: RuntimeDep, actor: ActorDep) -> Work:
    return Work(runtime, actor)


WorkDep = Annotated[Work, Depends(get_work)]
