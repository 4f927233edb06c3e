"""The Django view decorator and middleware, driven through Django's RequestFactory."""

from __future__ import annotations

from django.conf import settings

if not settings.configured:
    settings.configure(ALLOWED_HOSTS=["testserver"], SECRET_KEY="test")

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import RequestFactory

from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.integrations.django import exempt, keys, limit, middleware

factory = RequestFactory()


def test_view_decorator_429_with_headers_and_custom_refusal() -> None:
    lim = BaseLimiter("127.0.0.1:1", domain="site", limit="2/minute")

    @limit(lim, key=keys.client_address(["127.0.0.1"]))
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    def req() -> HttpRequest:
        return factory.get("/", HTTP_X_FORWARDED_FOR="192.0.2.7", REMOTE_ADDR="127.0.0.1")

    first = view(req())
    assert first.status_code == 200
    assert first["RateLimit-Policy"] == '"site";q=2;w=60'
    assert first["RateLimit"].startswith('"site";r=1;t=')
    assert view(req()).status_code == 200
    refused = view(req())
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1

    @limit(lim, key=keys.header("X-Key"), on_limited=lambda r, d, h: JsonResponse({}, status=429))
    def other(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    keyed = {"HTTP_X_KEY": "k"}
    assert [other(factory.get("/", **keyed)).status_code for _ in range(3)] == [200, 200, 429]
    assert other(factory.get("/", **keyed))["Content-Type"] == "application/json"
    assert other(factory.get("/")).status_code == 200  # no key: unlimited


def test_middleware_limits_all_but_exempt_views() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")
    mw = middleware(lim)(lambda request: HttpResponse("unused"))

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    def health(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    exempt(health)
    answers = [mw.process_view(factory.get("/"), view, (), {}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1]["RateLimit-Policy"] == '"default";q=1;w=60'
    assert mw.process_view(factory.get("/"), health, (), {}) is None  # Django calls it


async def test_async_views_are_limited_without_awaiting_the_decision() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")
    called = []

    @limit(lim, key=keys.header("X-Key"))
    async def view(request: HttpRequest) -> HttpResponse:
        called.append(1)
        return HttpResponse("ok")

    first = await view(factory.get("/", HTTP_X_KEY="k"))
    refused = await view(factory.get("/", HTTP_X_KEY="k"))
    assert (first.status_code, refused.status_code, called) == (200, 429, [1])
    assert first["RateLimit-Policy"] == refused["RateLimit-Policy"] == '"default";q=1;w=60'


def test_middleware_exempt_paths() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")
    mw = middleware(lim, exempt="/healthz")(lambda request: HttpResponse("unused"))

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    assert mw.process_view(factory.get("/healthz"), view, (), {}) is None  # Django calls it
    assert mw.process_view(factory.get("/healthz"), view, (), {}) is None
    assert mw.process_view(factory.get("/"), view, (), {}).status_code == 200
    assert mw.process_view(factory.get("/"), view, (), {}).status_code == 429
    assert mw.process_view(factory.get("/h"), view, (), {}).status_code == 429
