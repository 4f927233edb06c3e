"""A Flask app with a limit per route and client: ``python examples/flask_app.py [port]``.

Run ``ratekeeper serve --config examples/policies.yaml`` first (or set RATEKEEPER_SERVER to
its gRPC address). ``/hello`` allows 3 a minute per client, ``/search`` 5, ``/health`` any.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, request

import ratekeeper
from ratekeeper.client.integrations.flask import keys, limit

POLICIES = Path(__file__).with_name("policies.yaml")
limiter = ratekeeper.Limiter(
    os.environ.get("RATEKEEPER_SERVER", "127.0.0.1:8081"), domain="example", policies=POLICIES
)
app = Flask(__name__)
client = keys.client_address(trusted_proxies=["127.0.0.1"])  # behind a local proxy


@app.get("/hello")
@limit(limiter, key=keys.route("hello", client))
def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/search")
@limit(
    limiter,
    key=keys.route("search", client),
    on_limited=lambda req, decision, headers: ({"error": "slow down"}, 429),
)
def search() -> dict[str, str]:
    return {"q": request.args.get("q", "")}


@app.get("/health")
def health() -> str:
    return "ok"


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    try:
        app.run(host="127.0.0.1", port=port)
    finally:
        limiter.close()
