"""FastAPI application factory."""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI

from herald import __version__
from herald.api.deps import require_api_key
from herald.api.errors import install_error_handlers
from herald.api.routes import backups, contacts, imports
from herald.db.runtime import Runtime


def create_app(runtime: Runtime, *, embedded_worker: bool = False) -> FastAPI:
    app = FastAPI(
        title="Herald",
        version=__version__,
        description=(
            "Self-hosted customer communication hub. Every /api route needs `Authorization: Bearer <key>`."
        ),
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    api = APIRouter(prefix="/api", dependencies=[Depends(require_api_key)])
    api.include_router(contacts.router)
    api.include_router(imports.router)
    api.include_router(backups.router)
    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
