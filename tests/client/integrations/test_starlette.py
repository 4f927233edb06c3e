"""The per-route decorator on FastAPI and plain Starlette endpoints (httpx's ASGI transport)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request, Response
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.integrations.starlette import keys, limit


def client_of(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_fastapi_routes_429_not_500_each_with_its_own_limit() -> None:
    lim = BaseLimiter("127.0.0.1:1", domain="api", limit={"a:*": "2/minute", "b:*": "1/minute"})
    app = FastAPI()

    @app.get("/a")
    @limit(lim, key=lambda r: f"a:{r.client.host if r.client else ''}")
    async def a() -> dict[str, int]:
        return {"a": 1}

    @app.get("/b/{item}")
    @limit(lim, key=lambda r: "b:" + r.path_params["item"], policy_name="b")
    def b(item: str, request: Request, response: Response) -> dict[str, str]:
        response.headers["X-Mine"] = "1"
        return {"item": item}

    async with client_of(app) as client:
        await run_fastapi(client)


async def run_fastapi(client: httpx.AsyncClient) -> None:
    assert [(await client.get("/a")).status_code for _ in range(3)] == [200, 200, 429]
    ok = await client.get("/b/x")
    assert ok.json() == {"item": "x"}
    assert ok.headers["X-Mine"] == "1"
    assert ok.headers["RateLimit-Policy"] == '"b";q=1;w=60'
    refused = await client.get("/b/x")
    assert refused.status_code == 429
    assert refused.headers["RateLimit"].startswith('"b";r=0;t=')
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await client.get("/b/y")).status_code == 200
    assert (await client.get("/a")).headers["RateLimit-Policy"] == '"api";q=2;w=60'


async def test_starlette_endpoint_response_and_custom_refusal() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")

    @limit(
        lim,
        key=keys.header("X-Api-Key"),
        on_limited=lambda req, d, h: JSONResponse({"retry": round(d.retry_after)}, 429),
    )
    async def endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    async with client_of(Starlette(routes=[Route("/", endpoint)])) as client:
        await run_starlette(client)


async def run_starlette(client: httpx.AsyncClient) -> None:
    first = await client.get("/", headers={"X-Api-Key": "k"})
    assert first.text == "hi"
    assert first.headers["RateLimit-Policy"] == '"default";q=1;w=60'
    refused = await client.get("/", headers={"X-Api-Key": "k"})
    assert refused.status_code == 429
    assert refused.json()["retry"] > 0
    assert "Retry-After" in refused.headers
    assert (await client.get("/")).status_code == 200  # no key: unlimited
    assert "RateLimit" not in (await client.get("/")).headers


async def test_fastapi_dependencies_body_and_openapi_are_untouched() -> None:
    from fastapi import Depends

    lim = BaseLimiter("127.0.0.1:1", limit="2/minute")
    app = FastAPI()

    def dep() -> int:
        return 7

    @app.post("/x/{a}")
    @limit(lim, key=keys.header("k"), hits=2)
    async def x(a: int, body: dict[str, int], d: int = Depends(dep)) -> dict[str, object]:
        return {"a": a, "d": d, "body": body}

    async with client_of(app) as client:
        ok = await client.post("/x/3", json={"z": 1}, headers={"k": "1"})
        assert ok.json() == {"a": 3, "d": 7, "body": {"z": 1}}
        assert ok.headers["RateLimit"].startswith('"default";r=0;t=')  # 2 hits of 2
        assert (await client.post("/x/3", json={}, headers={"k": "1"})).status_code == 429
    params = app.openapi()["paths"]["/x/{a}"]["post"]["parameters"]
    assert [p["name"] for p in params] == ["a"]  # the injected request/response are not shown
