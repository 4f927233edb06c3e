"""The HTTP side of the server (aiohttp, same event loop as gRPC).

Routes (a table, :data:`ROUTES`):

* ``POST /json``: a protobuf-JSON ``RateLimitRequest``; 200 (OK) or 429 (OVER_LIMIT) with a
  protobuf-JSON ``RateLimitResponse``; 400 with a message for a malformed body or request; 415
  for a body declared as anything but JSON (``application/json`` or ``*/*+json``; a request
  without a ``Content-Type`` is read as JSON).
* ``GET /healthcheck``: 200 ``OK`` while serving, 500 otherwise; 200 ``DEGRADED <why>`` with
  the header :data:`DEGRADED_HEADER` (``store-pressure``, ``no-config``) while serving with the
  store under pressure or with no config loaded.
* ``GET /metrics``: Prometheus text.
* ``GET /rlconfig``: the loaded config, human-readable.
* ``GET /operator`` (and its script, style and ``/operator/snapshot.json``): the operator page
  (:mod:`ratekeeper.server.operator_page`), where the admin endpoints are served, when the
  endpoints carry one (a server with ``--admin-listen``).

Bodies are capped by aiohttp's ``client_max_size`` (1 MiB).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from google.protobuf import json_format
from prometheus_client import CONTENT_TYPE_LATEST

from ratekeeper.errors import RequestError
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.protocol.rls import RlsDecider
from ratekeeper.server.health import ServingHealth
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.operator_page import SNAPSHOT_PATH, OperatorPage

__all__ = ["ADMIN_PATHS", "DEGRADED_HEADER", "PUBLIC_PATHS", "ROUTES", "HttpEndpoints", "build_app"]

log = logging.getLogger(__name__)

#: Set on a 200 ``/healthcheck`` answer that is degraded; its value says how.
DEGRADED_HEADER = "x-ratekeeper-degraded"


@dataclass(frozen=True, slots=True)
class HttpEndpoints:
    """What the HTTP handlers read."""

    decider: RlsDecider
    #: The wall clock ``/json`` decisions are taken at (ns since the epoch).
    clock: Callable[[], int]
    health: ServingHealth
    metrics: Metrics
    policy: PolicyHolder
    #: The operator page (``None``: not served).
    operator: OperatorPage | None = None

    async def json(self, request: web.Request) -> web.Response:
        start = time.perf_counter()
        try:
            return await self._json(request)
        finally:
            self.metrics.timer("json").observe(time.perf_counter() - start)

    async def _json(self, request: web.Request) -> web.Response:
        if not _declares_json(request):
            self.metrics.invalid("json")
            return web.Response(
                status=415,
                text=f"unsupported content type {request.content_type!r}: {_JSON_ONLY}\n",
            )
        try:
            message = json_format.Parse(await request.text(), RateLimitRequest())
            response = await self.decider.should_rate_limit(message, self.clock())
        except (json_format.ParseError, RequestError, UnicodeDecodeError) as exc:
            self.metrics.invalid("json")
            return web.Response(status=400, text=f"bad request: {exc}\n")
        status = 429 if response.overall_code == RateLimitResponse.OVER_LIMIT else 200
        return web.Response(
            status=status,
            text=json_format.MessageToJson(response, indent=None),
            content_type="application/json",
        )

    async def healthcheck(self, request: web.Request) -> web.Response:
        if self.health.serving():
            degraded = self.health.degraded()
            if degraded is None:
                return web.Response(text="OK")
            headers = {DEGRADED_HEADER: degraded.kind}
            return web.Response(text=f"DEGRADED {degraded.why}\n", headers=headers)
        return web.Response(status=500, text="NOT SERVING")

    async def prometheus(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def rlconfig(self, request: web.Request) -> web.Response:
        return web.Response(text=self.policy.policy.describe())


#: What a 415 answer says.
_JSON_ONLY = "send application/json (curl: --json, or -H 'Content-Type: application/json')"


def _declares_json(request: web.Request) -> bool:
    """The body is declared JSON, or not declared at all.

    A form or ``text/plain`` body is refused: those are the types a browser posts cross-origin
    without a preflight, so accepting them would let any web page a browser inside the network
    opens post decisions (and spend quota) here.
    """
    if hdrs.CONTENT_TYPE not in request.headers:
        return True
    mime = request.content_type
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


Handler = Callable[[HttpEndpoints, web.Request], Awaitable[web.Response]]

#: (method, path, handler): the whole HTTP surface.
ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/json", HttpEndpoints.json),
    ("GET", "/healthcheck", HttpEndpoints.healthcheck),
    ("GET", "/metrics", HttpEndpoints.prometheus),
    ("GET", "/rlconfig", HttpEndpoints.rlconfig),
)


#: The admin endpoints: a shared token guards them, ``--admin-listen`` moves them.
ADMIN_PATHS = frozenset({"/metrics", "/rlconfig", SNAPSHOT_PATH})
#: What the main HTTP port keeps when the admin endpoints have their own listener.
PUBLIC_PATHS = frozenset({"/json", "/healthcheck"})


def build_app(
    endpoints: HttpEndpoints,
    *,
    paths: frozenset[str] | None = None,
    middlewares: tuple[Any, ...] = (),
) -> web.Application:
    """The aiohttp application serving :data:`ROUTES` (those in ``paths``, if given), and the
    operator page beside ``/metrics`` if the endpoints carry one."""
    app = web.Application(middlewares=list(middlewares))
    for method, path, handler in ROUTES:
        if paths is None or path in paths:
            app.router.add_route(method, path, _bind(handler, endpoints))
    if endpoints.operator is not None and (paths is None or SNAPSHOT_PATH in paths):
        endpoints.operator.add_routes(app)
    return app


def _bind(
    handler: Handler, endpoints: HttpEndpoints
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def route(request: web.Request) -> web.Response:
        return await handler(endpoints, request)

    return route
