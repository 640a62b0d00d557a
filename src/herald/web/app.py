"""Mount the server-rendered web UI (pages, static files, error pages) on the FastAPI app.

To add a slice's pages: write `web/<slice>_views.py` with an APIRouter whose handlers take
`SignedInDep` / `require_role(...)` and put `dependencies=CSRF` on every POST, render templates
that `{% extends "base.html" %}`, then include the router below and call `register_nav`.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from herald.db.runtime import Runtime
from herald.web import (
    account_views,
    audit_views,
    auth_views,
    campaigns_views,
    contacts_views,
    data_views,
    duplicates_views,
    home_views,
    imports_views,
    messages_views,
    segments_views,
    templates_views,
    users_views,
)
from herald.web.deps import (
    CsrfRejected,
    LoginRequired,
    PageForbidden,
    SessionCookieMiddleware,
    SetupRequired,
)
from herald.web.render import DEFAULT_NAV, STATIC_DIR, NavItem, build_templates, redirect, register_nav, render


def error_page(
    request: Request, status_code: int, message: str, *, headers: Mapping[str, str] | None = None
) -> Response:
    """The styled error page (error.html) every web error answers with: unknown URLs, 4xx and 5xx."""
    try:
        title = HTTPStatus(status_code).phrase
    except ValueError:
        title = "Error"
    response = render(request, "error.html", {"title": title, "message": message}, status_code=status_code)
    response.headers.update(headers or {})
    return response


async def _login_required(request: Request, _: Exception) -> Response:
    return redirect(request, "/login")


async def _setup_required(request: Request, _: Exception) -> Response:
    return redirect(request, "/setup")


async def _forbidden(request: Request, _: Exception) -> Response:
    return render(
        request,
        "error.html",
        {"title": "Not allowed", "message": "Your role does not give access to this page."},
        status_code=403,
    )


async def _csrf_rejected(request: Request, _: Exception) -> Response:
    return render(
        request,
        "error.html",
        {
            "title": "Request refused",
            "message": "This form was missing its security token or it has expired. "
            "Go back, reload the page and try again.",
        },
        status_code=403,
    )


def mount_web(app: FastAPI, runtime: Runtime) -> None:
    app.state.runtime = runtime
    app.state.web_templates = build_templates()
    app.state.web_nav = list(DEFAULT_NAV)
    app.add_middleware(SessionCookieMiddleware)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(SetupRequired, _setup_required)
    app.add_exception_handler(PageForbidden, _forbidden)
    app.add_exception_handler(CsrfRejected, _csrf_rejected)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (auth_views, home_views, account_views, users_views, audit_views):
        app.include_router(module.router, include_in_schema=False)
    _mount_contact_pages(app)
    _mount_message_pages(app)
    _mount_campaign_pages(app)
    _mount_segment_pages(app)


def _mount_contact_pages(app: FastAPI) -> None:
    staff = frozenset({"admin", "marketer"})
    for module in (contacts_views, imports_views, duplicates_views, data_views):
        app.include_router(module.router, include_in_schema=False)
    for item in (
        NavItem("Contacts", "/contacts"),
        NavItem("Imports", "/imports", staff),
        NavItem("Duplicates", "/duplicates", staff),
        NavItem("Export & backups", "/data", staff),
    ):
        register_nav(app, item, before="Users")


def _mount_message_pages(app: FastAPI) -> None:
    # Read-only for every role (see messages_views); beside Contacts, since a message is always to a person.
    app.include_router(messages_views.router, include_in_schema=False)
    register_nav(app, NavItem("Messages", "/messages"), before="Imports")


def _mount_campaign_pages(app: FastAPI) -> None:
    # Writing templates and campaigns is marketing work: admins and marketers (see templates_views).
    staff = frozenset({"admin", "marketer"})
    for module in (campaigns_views, templates_views):
        app.include_router(module.router, include_in_schema=False)
    register_nav(app, NavItem("Campaigns", "/campaigns", staff), before="Imports")
    register_nav(app, NavItem("Templates", "/templates", staff), before="Imports")


def _mount_segment_pages(app: FastAPI) -> None:
    app.include_router(segments_views.router, include_in_schema=False)
    register_nav(app, NavItem("Segments", "/segments", frozenset({"admin", "marketer"})), before="Messages")
