"""A pure ASGI middleware (Starlette, FastAPI, any ASGI app): 429 past the limit, headers always.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``: no task per request, no buffering of
the body, and the limiter's decision is the only work added before the app runs (the headers are
inserted into the app's own ``http.response.start`` message). Non-HTTP scopes pass through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any, Unpack

from ratekeeper.client.integrations.decorator import Acquirer
from ratekeeper.client.integrations.guard import REFUSED_BODY, ExemptPaths, Guard, GuardOptions
from ratekeeper.client.policy import Key

__all__ = ["RateLimitMiddleware", "client_address"]

#: An ASGI connection scope (``scope["type"]``, ``scope["path"]``, ``scope["client"]``, ...).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI application: ``await app(scope, receive, send)``.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def client_address(scope: Scope) -> Key | None:
    """The default key: the peer's address (``None``, unlimited, if the server gives none)."""
    client = scope.get("client")
    return client[0] if client else None


class RateLimitMiddleware(Guard[Scope]):
    """``app`` behind ``limiter``: each HTTP request costs ``hits`` under ``key(scope)``, but
    those to an ``exempt`` path (``scope["path"]``, each matched whole, ``*`` matching any run of
    characters)."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: Acquirer,
        key: Callable[[Scope], Key | None] = client_address,
        *,
        exempt: Iterable[str] = (),
        **options: Unpack[GuardOptions],
    ) -> None:
        super().__init__(limiter, key, **options)
        self.app = app
        self.exempt = ExemptPaths(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limited = scope["type"] == "http" and not self.exempt(scope["path"])
        checked = self.check(scope) if limited else None
        if checked is None:
            await self.app(scope, receive, send)
            return
        decision, headers = checked
        fields = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        if not decision.allowed:
            await _refuse(send, fields)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and fields:
                message["headers"] = [*message.get("headers", ()), *fields]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _refuse(send: Send, fields: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(REFUSED_BODY)).encode()),
        *fields,
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": REFUSED_BODY})
