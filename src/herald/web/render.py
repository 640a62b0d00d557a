"""Page rendering: the Jinja environment (autoescape on), the nav, security headers and form errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from herald.core.errors import HeraldError

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

# No inline script or style anywhere, so the policy can forbid both (RELIABILITY.md R4.2).
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # pages carry codes and personal data; keep them out of caches
}


@dataclass(frozen=True)
class NavItem:
    """One link in the header; `roles` limits who sees it (None: every signed-in operator)."""

    label: str
    href: str
    roles: frozenset[str] | None = None

    def visible_to(self, role: str) -> bool:
        return self.roles is None or role in self.roles

    def active_for(self, path: str) -> bool:
        return path == self.href if self.href == "/" else path.startswith(self.href)


DEFAULT_NAV = (
    NavItem("Dashboard", "/"),
    NavItem("Users", "/admin/users", frozenset({"admin"})),
    NavItem("Audit log", "/admin/audit", frozenset({"admin"})),
)


def register_nav(app: FastAPI, item: NavItem, *, before: str | None = None) -> None:
    """Add a header link (later slices: Contacts, Imports…), optionally before the link labelled `before`."""
    nav: list[NavItem] = app.state.web_nav
    index = next((i for i, existing in enumerate(nav) if existing.label == before), len(nav))
    nav.insert(index, item)


def format_datetime(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("HeadlessChrome", "Headless Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
)
_SYSTEMS = (
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe_browser(user_agent: str | None) -> str:
    """ "Firefox on Windows" from a User-Agent header, for the sessions list."""
    if not user_agent:
        return "Unknown browser"
    browser = next((name for token, name in _BROWSERS if token in user_agent), "Other browser")
    system = next((name for token, name in _SYSTEMS if token in user_agent), None)
    return f"{browser} on {system}" if system else browser


def build_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["datetime"] = format_datetime
    env.filters["browser"] = describe_browser
    return Jinja2Templates(env=env)


class FormErrors(dict[str, str]):
    """Messages keyed by form field name ("" for the whole form), shown next to the field."""

    def put(self, field: str, message: str) -> FormErrors:
        self[field] = message
        return self

    def add(self, exc: HeraldError, default_field: str = "") -> FormErrors:
        field = exc.fields.get("field")
        self[str(field) if field else default_field] = exc.message
        return self


def nav_for(request: Request, role: str | None) -> list[dict[str, Any]]:
    if role is None:
        return []
    items: Iterable[NavItem] = request.app.state.web_nav
    return [
        {"label": item.label, "href": item.href, "active": item.active_for(request.url.path)}
        for item in items
        if item.visible_to(role)
    ]


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the shared context: the signed-in user (or None), CSRF token, nav."""
    signed_in = getattr(request.state, "signed_in", None)
    user = signed_in.user if signed_in else None
    base: dict[str, Any] = {
        "user": user,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "nav": nav_for(request, user.role if user else None),
        "errors": FormErrors(),
        "values": {},
        "notice": None,
    }
    base.update(context or {})
    templates: Jinja2Templates = request.app.state.web_templates
    response = templates.TemplateResponse(request, template, base, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(request: Request, url: str) -> Response:
    """See-other redirect; htmx requests get HX-Redirect so the whole page moves."""
    if request.headers.get("HX-Request"):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)
