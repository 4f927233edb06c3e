"""The pure ASGI middleware on a Starlette app, driven through httpx's ASGI transport."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.integrations import RateLimitMiddleware


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello", headers={"x-app": "1"})


def build(lim: BaseLimiter) -> RateLimitMiddleware:
    app = Starlette(routes=[Route("/", hello)])
    return RateLimitMiddleware(app, lim, key=_user, policy_name="per-user")


def _user(scope: dict[str, object]) -> str | None:
    headers = dict(scope["headers"])  # type: ignore[call-overload]
    user = headers.get(b"x-user")
    return user.decode() if user else None


async def test_429_with_ietf_headers_past_the_limit() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="2/minute")
    transport = httpx.ASGITransport(app=build(lim))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        first = await client.get("/", headers={"x-user": "ann"})
        assert first.status_code == 200
        assert first.text == "hello"
        assert first.headers["x-app"] == "1"
        assert first.headers["ratelimit-policy"] == '"per-user";q=2;w=60'
        assert first.headers["ratelimit"] == '"per-user";r=1;t=30'
        assert "retry-after" not in first.headers
        second = await client.get("/", headers={"x-user": "ann"})
        assert second.headers["ratelimit"] == '"per-user";r=0;t=60'
        third = await client.get("/", headers={"x-user": "ann"})
        assert third.status_code == 429
        assert third.headers["ratelimit"] == '"per-user";r=0;t=30'
        assert third.headers["retry-after"] == "30"
        other = await client.get("/", headers={"x-user": "bob"})
        assert other.status_code == 200


async def test_requests_without_a_key_and_non_http_scopes_pass() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="0/s")
    transport = httpx.ASGITransport(app=build(lim))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/")
        assert response.status_code == 200
        assert "ratelimit" not in response.headers
        assert (await client.get("/", headers={"x-user": "z"})).status_code == 429
    seen: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(str(scope["type"]))

    await RateLimitMiddleware(app, lim)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


async def test_exempt_paths_are_neither_counted_nor_given_headers() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")
    routes = [Route(path, hello) for path in ("/", "/healthz", "/static/{name:path}")]
    app = RateLimitMiddleware(
        Starlette(routes=routes), lim, key=_user, exempt=["/healthz", "/static/*"]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        user = {"x-user": "ann"}
        for path in ("/healthz", "/static/a/b.css", "/healthz"):
            answer = await client.get(path, headers=user)
            assert answer.status_code == 200
            assert "ratelimit" not in answer.headers
        assert (await client.get("/", headers=user)).status_code == 200  # the first counted
        assert (await client.get("/", headers=user)).status_code == 429
        assert (await client.get("/healthzz", headers=user)).status_code == 429  # matched whole
        assert (await client.get("/static", headers=user)).status_code == 429
