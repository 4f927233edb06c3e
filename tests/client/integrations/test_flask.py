"""The per-view decorator on Flask views, driven through Flask's test client."""

from __future__ import annotations

from flask import Flask

from ratekeeper.client.base import BaseLimiter
from ratekeeper.client.integrations.flask import keys, limit


def test_each_view_its_limit_429_with_headers_and_a_custom_refusal() -> None:
    lim = BaseLimiter("127.0.0.1:1", domain="web", limit={"a:*": "2/minute", "b:*": "1/minute"})
    app = Flask(__name__)
    addr = keys.client_address(trusted_proxies=["10.0.0.0/8"])

    @app.get("/a")
    @limit(lim, key=lambda r: f"a:{addr(r)}")
    def a() -> str:
        return "a"

    @app.get("/b")
    @limit(lim, key=lambda r: f"b:{addr(r)}", on_limited=lambda r, d, h: ({"no": 1}, 429))
    def b() -> tuple[str, int]:
        return "b", 201

    client = app.test_client()
    proxied = {"REMOTE_ADDR": "10.0.0.5"}
    fwd = {"X-Forwarded-For": "198.51.100.1"}
    codes = [client.get("/a", environ_base=proxied, headers=fwd).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get("/a", environ_base=proxied).status_code == 200  # 10.0.0.5 itself
    ok = client.get("/b")
    assert (ok.status_code, ok.text) == (201, "b")
    assert ok.headers["RateLimit-Policy"] == '"web";q=1;w=60'
    refused = client.get("/b")
    assert refused.status_code == 429
    assert refused.json == {"no": 1}
    assert refused.headers["RateLimit"].startswith('"web";r=0;t=')
    assert int(refused.headers["Retry-After"]) >= 1


def test_user_and_header_keys() -> None:
    lim = BaseLimiter("127.0.0.1:1", limit="1/minute")
    app = Flask(__name__)

    @app.get("/")
    @limit(lim, key=keys.user())
    def index() -> str:
        return "ok"

    client = app.test_client()
    auth = {"Authorization": "Basic dTE6cA=="}  # u1:p
    assert [client.get("/", headers=auth).status_code for _ in range(2)] == [200, 429]
    assert client.get("/").status_code == 200  # anonymous: unlimited
