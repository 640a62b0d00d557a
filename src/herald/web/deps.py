"""Request dependencies for web pages: the session cookie, the signed-in operator, roles and CSRF.

Use them in any views module:

    @router.get("/contacts")
    def contacts_page(request: Request, signed_in: SignedInDep) -> Response: ...

    @router.post("/contacts/{id}/erase", dependencies=CSRF)
    def erase(request: Request, signed_in: Annotated[SignedIn, Depends(require_role("admin", "marketer"))]) ...
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.auth import sessions, users
from herald.auth.sessions import NewSession, Session, SessionPolicy
from herald.core.actor import Actor
from herald.core.errors import NotFoundError
from herald.db.runtime import Runtime
from herald.db.unit_of_work import UnitOfWork, unit_of_work

COOKIE_NAME = "herald_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """No signed-in session: the handler sends the browser to the sign-in page."""


class SetupRequired(Exception):
    """No account exists yet: every page leads to the one-time set-up."""


class PageForbidden(Exception):
    """Signed in, but the role may not use this page."""


class CsrfRejected(Exception):
    """A state-changing request without this session's CSRF token."""


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def operator(request: Request, signed_in: SignedIn) -> Actor:
    """The signed-in operator, from this request's address: who a page's changes are audited as."""
    return signed_in.user.actor(client_ip(request))


def begin(request: Request, signed_in: SignedIn) -> AbstractContextManager[UnitOfWork]:
    """The unit of work a page's change runs in, as the signed-in operator."""
    runtime = get_runtime(request)
    return unit_of_work(runtime.engine, runtime.clock, operator(request, signed_in))


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def session_policy(runtime: Runtime) -> SessionPolicy:
    return SessionPolicy.from_settings(runtime.settings.session_idle_minutes, runtime.settings.session_absolute_hours)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def has_users(request: Request) -> bool:
    """Whether set-up is done; once true it stays true (accounts are never deleted), so cache it."""
    if getattr(request.app.state, "web_has_users", False):
        return True
    found = users.any_users(get_runtime(request).engine)
    request.app.state.web_has_users = found
    return found


@dataclass
class SessionState:
    token: str | None
    session: Session | None


def session_state(request: Request) -> SessionState:
    """The session named by the cookie (loaded once per request); a dead cookie is cleared."""
    cached: SessionState | None = getattr(request.state, "session_state", None)
    if cached is not None:
        return cached
    runtime = get_runtime(request)
    token = request.cookies.get(COOKIE_NAME)
    session = sessions.load_session(runtime.engine, runtime.clock, session_policy(runtime), token)
    if token and session is None:
        request.state.cookie_action = ("clear", None)
    state = SessionState(token=token if session else None, session=session)
    if state.token:
        request.state.csrf_token = sessions.csrf_token(state.token)
    request.state.session_state = state
    return state


def adopt_session(request: Request, new: NewSession) -> SessionState:
    """Make a newly started (or rotated) session this request's, and send its cookie."""
    request.state.cookie_action = ("set", new.token)
    request.state.csrf_token = sessions.csrf_token(new.token)
    state = SessionState(token=new.token, session=new.session)
    request.state.session_state = state
    return state


def forget_session(request: Request) -> None:
    request.state.cookie_action = ("clear", None)
    request.state.session_state = SessionState(token=None, session=None)
    request.state.csrf_token = ""


def ensure_session(request: Request) -> SessionState:
    """A session for a visitor, so the sign-in and set-up forms carry a CSRF token."""
    state = session_state(request)
    if state.session is not None:
        return state
    runtime = get_runtime(request)
    policy = session_policy(runtime)
    with runtime.engine.begin() as conn:
        sessions.purge_expired(conn, runtime.clock, policy)
        new = sessions.start_session(
            conn, runtime.clock, policy, stage="anonymous", ip=client_ip(request), user_agent=user_agent(request)
        )
    return adopt_session(request, new)


@dataclass(frozen=True)
class SignedIn:
    user: users.User
    session: Session
    token: str

    @property
    def actor_ip(self) -> str | None:
        return self.session.ip


def require_user(request: Request) -> SignedIn:
    """The signed-in operator (any role), or LoginRequired / SetupRequired."""
    if not has_users(request):
        raise SetupRequired
    state = session_state(request)
    session = state.session
    if session is None or state.token is None or session.stage != "full" or session.user_id is None:
        raise LoginRequired
    try:
        user = users.get_user(get_runtime(request).engine, session.user_id)
    except NotFoundError as exc:
        raise LoginRequired from exc
    signed_in = SignedIn(user=user, session=session, token=state.token)
    request.state.signed_in = signed_in
    return signed_in


SignedInDep = Annotated[SignedIn, Depends(require_user)]


def require_role(*roles: str) -> Callable[[SignedIn], SignedIn]:
    """A dependency that lets only the given roles through (403 page for the others)."""
    allowed = frozenset(roles)

    def check(signed_in: SignedInDep) -> SignedIn:
        if signed_in.user.role not in allowed:
            raise PageForbidden
        return signed_in

    return check


AdminDep = Annotated[SignedIn, Depends(require_role("admin"))]


async def require_csrf(request: Request) -> None:
    """Reject cross-site requests and any state change without this session's synchronizer token."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfRejected
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    token = request.cookies.get(COOKIE_NAME)
    if not token or not sessions.check_csrf(token, submitted):
        raise CsrfRejected
    # Load the session now, which also puts its token in request.state: a form re-rendered by this POST
    # (an error to correct) must carry the token again, or the corrected retry would be refused.
    session_state(request)


CSRF: list[Any] = [Depends(require_csrf)]


def _cookie_header(action: tuple[str, str | None], secure: bool) -> str:
    response = Response()
    kind, token = action
    if kind == "set" and token:
        response.set_cookie(COOKIE_NAME, token, httponly=True, secure=secure, samesite="lax", path="/")
    else:
        response.delete_cookie(COOKIE_NAME, httponly=True, secure=secure, samesite="lax", path="/")
    return response.headers["set-cookie"]


class SessionCookieMiddleware:
    """Sends the Set-Cookie a request asked for (new, rotated or cleared session) on whatever response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})

        async def send_with_cookie(message: Message) -> None:
            action = scope["state"].get("cookie_action")
            if message["type"] == "http.response.start" and action:
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", _cookie_header(action, scope.get("scheme") == "https"))
            await send(message)

        await self.app(scope, receive, send_with_cookie)
