"""Per-route limits for Starlette and FastAPI endpoints: ``@limit(limiter, key=...)``.

The decorated endpoint (async or sync) is admitted through the limiter under ``key(request)``;
refused, it is not called and the answer is a 429 ``Response`` (or ``on_limited(request,
decision, headers)``'s) with the IETF RateLimit headers. Admitted, the headers go on the
endpoint's ``Response`` if it returns one, else (FastAPI) on the ``Response`` FastAPI injects.

On FastAPI the endpoint need not declare a ``Request``: the decorator adds the parameters it
needs to the signature FastAPI reads (``_ratekeeper_request``, ``_ratekeeper_response``) and
removes them before calling the endpoint. On plain Starlette the endpoint takes the request.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Unpack

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ratekeeper.client.decide import Decision
from ratekeeper.client.integrations.decorator import Acquirer
from ratekeeper.client.integrations.guard import REFUSED_BODY, Guard, GuardOptions
from ratekeeper.client.integrations.keys import Access, KeyHelpers
from ratekeeper.client.policy import Key

__all__ = ["OnLimited", "keys", "limit"]

#: A custom refusal: ``(request, decision, headers)`` to the response (headers added after).
OnLimited = Callable[[Request, Decision, list[tuple[str, str]]], Response]

_REQUEST, _RESPONSE = "_ratekeeper_request", "_ratekeeper_response"


def _user(request: Request) -> str | None:
    user = request.scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(getattr(user, "identity", None) or getattr(user, "display_name", "")) or None


#: Key helpers: ``keys.client_address(trusted_proxies=[...])``, ``keys.header(name)``,
#: ``keys.user()`` (``request.user`` of Starlette's AuthenticationMiddleware), ``keys.route``.
keys: KeyHelpers[Request] = KeyHelpers(
    Access(
        peer=lambda r: r.client.host if r.client else None,
        header=lambda r, name: r.headers.get(name),
        user=_user,
    )
)


def refused(decision: Decision, headers: list[tuple[str, str]]) -> Response:
    """The default 429."""
    return Response(REFUSED_BODY, 429, media_type="text/plain")


def _with_headers(response: Response, headers: list[tuple[str, str]]) -> Response:
    for name, value in headers:
        response.headers[name] = value
    return response


def _parameters(endpoint: Callable[..., Any]) -> tuple[inspect.Signature, str | None, str | None]:
    """The endpoint's signature, with annotations resolved, and its Request/Response parameters."""
    sig = inspect.signature(endpoint)
    try:
        hints = typing.get_type_hints(endpoint)
    except Exception:  # unresolvable annotations: keep them as written
        hints = {}
    params = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()
    ]
    found: dict[type, str] = {}
    for p in params:
        for cls in (Request, Response):
            if isinstance(p.annotation, type) and issubclass(p.annotation, cls):
                found.setdefault(cls, p.name)
    return sig.replace(parameters=params), found.get(Request), found.get(Response)


def limit(
    limiter: Acquirer,
    key: Callable[[Request], Key | None] | None = None,
    *,
    on_limited: OnLimited | None = None,
    **options: Unpack[GuardOptions],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Limit an endpoint (see the module doc). ``key`` defaults to the peer's address."""
    guard = Guard(limiter, key or keys.client_address(), **options)

    def decorate(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        sig, request_param, response_param = _parameters(endpoint)
        is_async = inspect.iscoroutinefunction(endpoint)
        extra = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=cls)
            for name, cls, have in (
                (_REQUEST, Request, request_param),
                (_RESPONSE, Response, response_param),
            )
            if have is None
        ]
        positional = list(sig.parameters).index(request_param) if request_param else None

        @functools.wraps(endpoint)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            request = kwargs.pop(_REQUEST, None)
            injected = kwargs.pop(_RESPONSE, None)
            if request_param is not None:
                request = kwargs.get(request_param)
                if request is None and positional is not None and positional < len(args):
                    request = args[positional]
            if request is None:
                request = next((a for a in args if isinstance(a, Request)), None)
            if request is None:
                raise TypeError(f"{endpoint.__qualname__}: no Request to rate limit by")
            refusal, headers = guard.verdict(request)
            if refusal is not None:
                answer = (
                    on_limited(request, refusal, headers)
                    if on_limited
                    else refused(refusal, headers)
                )
                return _with_headers(answer, headers)
            if is_async:
                result = await endpoint(*args, **kwargs)
            else:
                result = await run_in_threadpool(endpoint, *args, **kwargs)
            if isinstance(result, Response):
                return _with_headers(result, headers)
            target = injected if injected is not None else kwargs.get(response_param or "")
            if isinstance(target, Response):
                _with_headers(target, headers)
            return result

        params = list(sig.parameters.values())
        at = next((i for i, p in enumerate(params) if p.kind is p.VAR_KEYWORD), len(params))
        guarded.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[*params[:at], *extra, *params[at:]]
        )
        return guarded

    return decorate
