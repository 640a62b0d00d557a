"""Refuse request bodies over the configured size with 413, before they are read into memory."""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ErrorResponder = Callable[[Request, int, str, str], Response]


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once a streamed body passes the limit; the error handlers shape it."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    return f"The request body is larger than the limit of {limit} bytes."


class BodyLimitMiddleware:
    """Pure ASGI: a Content-Length over the limit is refused up front; chunked bodies are counted.

    Starlette's own limiter answers in plain text when a route never reads the body (unknown path,
    401), so every 413 here goes through `respond`, which gives the API's error shape or the web's page.
    Upload routes (method, path) get their own, larger limit.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_routes: Collection[tuple[str, str]],
        respond: ErrorResponder,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_routes = frozenset(upload_routes)
        self.respond = respond

    def limit_for(self, scope: Scope) -> int:
        is_upload = (scope["method"], scope["path"].rstrip("/")) in self.upload_routes
        return self.max_upload_bytes if is_upload else self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLargeError:
            # Normally the app's handlers answer it; this covers a read outside them.
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = self.respond(Request(scope), 413, "payload_too_large", too_large_message(limit))
        # The rest of the body is never read; tell the client this connection is done with.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
