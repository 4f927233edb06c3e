"""A FastAPI app with a limit per route and client: ``python examples/fastapi_app.py [port]``.

Run ``ratekeeper serve --config examples/policies.yaml`` first (or set RATEKEEPER_SERVER to
its gRPC address). ``/hello`` allows 3 a minute per client, ``/search`` 5, ``/health`` any.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

import ratekeeper.aio
from ratekeeper.client.integrations.starlette import keys, limit

POLICIES = Path(__file__).with_name("policies.yaml")
limiter = ratekeeper.aio.Limiter(
    os.environ.get("RATEKEEPER_SERVER", "127.0.0.1:8081"), domain="example", policies=POLICIES
)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await limiter.start()  # reporting runs on the server's loop
    yield
    await limiter.close()


app = FastAPI(lifespan=lifespan)
client = keys.client_address(trusted_proxies=["127.0.0.1"])  # behind a local proxy


@app.get("/hello")
@limit(limiter, key=keys.route("hello", client))
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@app.get("/search")
@limit(limiter, key=keys.route("search", client))
def search(q: str = "") -> dict[str, str]:
    return {"q": q}


@app.get("/health")
async def health() -> str:
    return "ok"


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
