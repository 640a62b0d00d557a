"""FastAPI application factory."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from herald import __version__
from herald.api.body_limit import BodyLimitMiddleware
from herald.api.deps import require_api_key
from herald.api.docs import mount_docs
from herald.api.errors import COMMON_ERROR_STATUSES, error_response, error_responses, install_error_handlers
from herald.api.routes import backups, campaigns, contacts, duplicates, imports, jobs, messages, segments, templates
from herald.db.runtime import Runtime
from herald.web.app import mount_web
from herald.worker.loop import run_worker

# Multipart import uploads get HERALD_MAX_UPLOAD_BYTES; every other body HERALD_MAX_BODY_BYTES.
UPLOAD_ROUTES = (("POST", "/api/imports"), ("POST", "/imports"))


def _lifespan(runtime: Runtime, embedded_worker: bool) -> object:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Embedded mode: one worker thread beside the API, stopped with the server.
        stop = threading.Event()
        thread = None
        if embedded_worker:
            thread = threading.Thread(target=run_worker, args=(runtime,), kwargs={"stop": stop}, daemon=True)
            thread.start()
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=10)

    return lifespan


def create_app(runtime: Runtime, *, embedded_worker: bool = False) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan(runtime, embedded_worker),  # type: ignore[arg-type]
        title="Herald",
        version=__version__,
        description=("Self-hosted customer communication hub. Every /api route needs `Authorization: Bearer <key>`."),
        # FastAPI's own /docs and /redoc load their scripts from CDNs; api/docs.py serves vendored ones.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)

    api = APIRouter(
        prefix="/api", dependencies=[Depends(require_api_key)], responses=error_responses(*COMMON_ERROR_STATUSES)
    )
    api.include_router(campaigns.router)
    api.include_router(contacts.router)
    api.include_router(duplicates.router)
    api.include_router(imports.router)
    api.include_router(jobs.router)
    api.include_router(backups.router)
    api.include_router(messages.router)
    api.include_router(templates.router)
    api.include_router(segments.router)
    app.include_router(api)
    app.include_router(messages.hooks, responses=error_responses(403, 413, 500, 503))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    mount_docs(app)
    mount_web(app, runtime)
    # Added last, so it is the outermost middleware: nothing reads a body it would refuse.
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=runtime.settings.max_body_bytes,
        max_upload_bytes=runtime.settings.max_upload_bytes,
        upload_routes=UPLOAD_ROUTES,
        respond=error_response,
    )
    return app
