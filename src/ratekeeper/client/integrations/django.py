"""Django: a per-view decorator, ``@limit(limiter, key=...)``, and a middleware.

The view is admitted through the limiter under ``key(request)``; refused, it is not called and
the answer is a 429 (or ``on_limited(request, decision, headers)``'s response) with the IETF
RateLimit headers; admitted, the headers are added to the view's response.

The middleware limits every view but those marked :func:`exempt`, requests to a path listed in
its ``exempt=`` (``request.path_info``, each matched whole, ``*`` matching any run of
characters) and requests whose key is ``None``. Django builds middleware from a dotted path,
so make the class where the limiter lives and name it in ``MIDDLEWARE``::

    RateLimit = middleware(limiter, key=keys.client_address(["10.0.0.0/8"]))
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Unpack

from django.http import HttpRequest, HttpResponse, HttpResponseBase

from ratekeeper.client.decide import Decision
from ratekeeper.client.integrations.decorator import Acquirer
from ratekeeper.client.integrations.guard import REFUSED_BODY, ExemptPaths, Guard, GuardOptions
from ratekeeper.client.integrations.keys import Access, KeyHelpers
from ratekeeper.client.policy import Key

__all__ = ["OnLimited", "exempt", "keys", "limit", "middleware"]

#: A custom refusal: ``(request, decision, headers)`` to the response (headers added after).
OnLimited = Callable[[HttpRequest, Decision, list[tuple[str, str]]], HttpResponseBase]
View = Callable[..., HttpResponseBase]
KeyFn = Callable[[HttpRequest], Key | None]

_EXEMPT = "ratekeeper_exempt"


def _user(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.pk)


#: Key helpers: ``keys.client_address(trusted_proxies=[...])``, ``keys.header(name)``,
#: ``keys.user()`` (``request.user.pk``, anonymous: unlimited), ``keys.route``.
keys: KeyHelpers[HttpRequest] = KeyHelpers(
    Access(
        peer=lambda r: r.META.get("REMOTE_ADDR"),
        header=lambda r, name: r.headers.get(name),
        user=_user,
    )
)


def exempt(view: View) -> View:
    """Mark ``view`` as not limited by the middleware."""
    setattr(view, _EXEMPT, True)
    return view


Checked = tuple[Decision, list[tuple[str, str]]] | None


class _Check:
    def __init__(self, guard: Guard[HttpRequest], on_limited: OnLimited | None) -> None:
        self.guard, self.on_limited = guard, on_limited

    def refusal(self, request: HttpRequest, checked: Checked) -> HttpResponseBase | None:
        """The 429 if ``checked`` refuses (``None``: admitted)."""
        if checked is None or checked[0].allowed:
            return None
        if self.on_limited is not None:
            return _with_headers(self.on_limited(request, *checked), checked)
        response = HttpResponse(REFUSED_BODY, status=429, content_type="text/plain")
        return _with_headers(response, checked)

    def run(self, request: HttpRequest, view: Callable[[], HttpResponseBase]) -> HttpResponseBase:
        checked = self.guard.check(request)
        return self.refusal(request, checked) or _with_headers(view(), checked)


def _with_headers(response: HttpResponseBase, checked: Checked) -> HttpResponseBase:
    for name, value in checked[1] if checked else ():
        response[name] = value
    return response


def limit(
    limiter: Acquirer,
    key: KeyFn | None = None,
    *,
    on_limited: OnLimited | None = None,
    **options: Unpack[GuardOptions],
) -> Callable[[View], View]:
    """Limit a view (see the module doc). ``key`` defaults to the peer's address."""
    guard = Guard(limiter, key or keys.client_address(), **options)
    check = _Check(guard, on_limited)

    def decorate(view: View) -> View:
        if inspect.iscoroutinefunction(view):  # an async view: deciding is never awaited

            @functools.wraps(view)
            async def guarded_async(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                checked = check.guard.check(request)
                refused = check.refusal(request, checked)
                return refused or _with_headers(await view(request, *args, **kwargs), checked)

            return guarded_async

        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return check.run(request, lambda: view(request, *args, **kwargs))

        return guarded

    return decorate


def middleware(
    limiter: Acquirer,
    key: KeyFn | None = None,
    *,
    on_limited: OnLimited | None = None,
    exempt: Iterable[str] = (),
    **options: Unpack[GuardOptions],
) -> type:
    """A middleware class limiting every view not marked :func:`exempt` and every path not
    listed in ``exempt`` (see the module doc)."""
    guard = Guard(limiter, key or keys.client_address(), **options)
    check = _Check(guard, on_limited)
    exempt_path = ExemptPaths(exempt)

    class RateLimitMiddleware:
        def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
            self.get_response = get_response

        def __call__(self, request: HttpRequest) -> HttpResponseBase:
            return self.get_response(request)

        def process_view(
            self, request: HttpRequest, view: View, args: Any, kwargs: Any
        ) -> HttpResponseBase | None:
            if getattr(view, _EXEMPT, False) or exempt_path(request.path_info):
                return None
            return check.run(request, lambda: view(request, *args, **kwargs))

    return RateLimitMiddleware
