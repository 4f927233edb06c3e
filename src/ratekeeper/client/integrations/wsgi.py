"""A WSGI middleware (Flask, Django, any WSGI app): 429 past the limit, headers always."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Unpack

from ratekeeper.client.integrations.decorator import Acquirer
from ratekeeper.client.integrations.guard import REFUSED_BODY, ExemptPaths, Guard, GuardOptions
from ratekeeper.client.policy import Key

__all__ = ["WsgiRateLimitMiddleware", "remote_address"]

#: A WSGI request environment (``PATH_INFO``, ``REMOTE_ADDR``, ``HTTP_*`` headers, ...).
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
#: A WSGI application: ``app(environ, start_response)`` returns the body's chunks.
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def remote_address(environ: Environ) -> Key | None:
    """The default key: ``REMOTE_ADDR`` (``None``, unlimited, if the server gives none)."""
    address = environ.get("REMOTE_ADDR")
    return str(address) if address else None


class WsgiRateLimitMiddleware(Guard[Environ]):
    """``app`` behind ``limiter``: each request costs ``hits`` under ``key(environ)``, but those
    to an ``exempt`` path (``PATH_INFO``, each matched whole, ``*`` matching any run of
    characters)."""

    def __init__(
        self,
        app: WSGIApp,
        limiter: Acquirer,
        key: Callable[[Environ], Key | None] = remote_address,
        *,
        exempt: Iterable[str] = (),
        **options: Unpack[GuardOptions],
    ) -> None:
        super().__init__(limiter, key, **options)
        self.app = app
        self.exempt = ExemptPaths(exempt)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        exempt = self.exempt(environ.get("PATH_INFO", ""))
        checked = None if exempt else self.check(environ)
        if checked is None:
            return self.app(environ, start_response)
        decision, fields = checked
        if not decision.allowed:
            headers = [("Content-Type", "text/plain; charset=utf-8"),
                       ("Content-Length", str(len(REFUSED_BODY))), *fields]  # fmt: skip
            start_response("429 Too Many Requests", headers)
            return [REFUSED_BODY]

        def start_with_headers(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, *fields], *exc)

        return self.app(environ, start_with_headers)
