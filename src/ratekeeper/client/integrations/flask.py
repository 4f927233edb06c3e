"""Per-route limits for Flask views: ``@limit(limiter, key=...)`` under ``@app.route``.

The view is admitted through the limiter under ``key(flask.request)``; refused, it is not called
and the answer is a 429 (or ``on_limited(request, decision, headers)``'s response) with the IETF
RateLimit headers; admitted, the headers are added to the view's response.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Unpack

import flask
from flask import Request, Response

from ratekeeper.client.decide import Decision
from ratekeeper.client.integrations.decorator import Acquirer
from ratekeeper.client.integrations.guard import REFUSED_BODY, Guard, GuardOptions
from ratekeeper.client.integrations.keys import Access, KeyHelpers
from ratekeeper.client.policy import Key

__all__ = ["OnLimited", "keys", "limit"]

#: A custom refusal: ``(request, decision, headers)`` to any Flask view return value.
OnLimited = Callable[[Request, Decision, list[tuple[str, str]]], Any]


def _user(request: Request) -> str | None:
    """``flask_login.current_user``-style ``g.user`` if set, else the HTTP auth username."""
    user = getattr(flask.g, "user", None)
    if user is not None:
        return str(getattr(user, "id", user))
    auth = request.authorization
    return auth.username if auth and auth.username else None


#: Key helpers: ``keys.client_address(trusted_proxies=[...])``, ``keys.header(name)``,
#: ``keys.user()`` (``g.user``, else the HTTP auth username), ``keys.route``.
keys: KeyHelpers[Request] = KeyHelpers(
    Access(peer=lambda r: r.remote_addr, header=lambda r, name: r.headers.get(name), user=_user)
)


def limit(
    limiter: Acquirer,
    key: Callable[[Request], Key | None] | None = None,
    *,
    on_limited: OnLimited | None = None,
    **options: Unpack[GuardOptions],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Limit a view (see the module doc). ``key`` defaults to the peer's address."""
    guard = Guard(limiter, key or keys.client_address(), **options)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Response:
            request = flask.request._get_current_object()  # type: ignore[attr-defined]
            refused, headers = guard.verdict(request)
            if refused is not None:
                if on_limited is not None:
                    response = flask.make_response(on_limited(request, refused, headers))
                else:
                    response = Response(REFUSED_BODY, 429, mimetype="text/plain")
            else:
                response = flask.make_response(view(*args, **kwargs))
            for name, value in headers:
                response.headers[name] = value
            return response

        return guarded

    return decorate
