"""The WSGI middleware on a Flask app, driven through Flask's test client."""

from __future__ import annotations

from flask import Flask

from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.integrations import WsgiRateLimitMiddleware


def build(lim: BaseLimiter) -> Flask:
    app = Flask(__name__)

    @app.get("/")
    def hello() -> str:
        return "hello"

    app.wsgi_app = WsgiRateLimitMiddleware(app.wsgi_app, lim)  # type: ignore[method-assign]
    return app


def test_429_with_ietf_headers_past_the_limit() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/s")
    client = build(lim).test_client()
    first = client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert first.status_code == 200
    assert first.text == "hello"
    assert first.headers["RateLimit-Policy"] == '"default";q=1;w=1'
    assert first.headers["RateLimit"] == '"default";r=0;t=1'
    refused = client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit"] == '"default";r=0;t=1'
    assert client.get("/", environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 200


def test_no_address_no_limit() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="0/s")
    client = build(lim).test_client()
    assert client.get("/", environ_base={"REMOTE_ADDR": ""}).status_code == 200


def test_exempt_paths_are_neither_counted_nor_given_headers() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")
    app = Flask(__name__)

    @app.get("/")
    @app.get("/healthz")
    @app.get("/assets/<path:name>")
    def hello(name: str = "") -> str:
        return "hello"

    app.wsgi_app = WsgiRateLimitMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, lim, exempt=("/healthz", "/assets/*")
    )
    client = app.test_client()
    peer = {"REMOTE_ADDR": "10.0.0.1"}
    for path in ("/healthz", "/assets/app.js", "/healthz"):
        answer = client.get(path, environ_base=peer)
        assert answer.status_code == 200
        assert "RateLimit" not in answer.headers
    assert client.get("/", environ_base=peer).status_code == 200
    assert client.get("/", environ_base=peer).status_code == 429
    assert client.get("/healthz/", environ_base=peer).status_code == 429  # matched whole
