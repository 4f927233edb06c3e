"""The operator page over HTTP: ``GET /operator`` (HTML), its script and style, and
``GET /operator/snapshot.json`` (the document :mod:`.operator_snapshot` builds).

Served only where the admin endpoints have their own listener (``--admin-listen``): the page
names the keys being limited (client addresses, user ids), so it stays off the port Envoy and
applications reach. The page and its static files carry no data and are open; the snapshot is an
admin endpoint (``ratekeeper.server.http.ADMIN_PATHS``): with ``--auth-token-file`` it requires
``Authorization: Bearer <token>``, which the page's script sends (it takes the token from the
address's fragment, ``/operator#token=...``, never sent to the server, or asks for it).

The static files are package data (``ratekeeper/server/static``), read once; nothing is loaded
from any other host. A task samples the RLS rule counts once per bucket while the listener runs
(:meth:`OperatorPage.start`, :meth:`OperatorPage.stop`, hooked on the aiohttp application).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from ratekeeper.backends.budgets import PressureReporting
from ratekeeper.backends.store import Store
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.operator_history import OperatorTap
from ratekeeper.server.operator_snapshot import ClusterState, StoreState, build_snapshot
from ratekeeper.server.slicelet import Slicelet

__all__ = ["OPERATOR_PATHS", "SNAPSHOT_PATH", "STATIC_FILES", "OperatorPage"]

#: The snapshot's path (token-guarded as an admin endpoint).
SNAPSHOT_PATH = "/operator/snapshot.json"
#: Each static path → (package file, content type).
STATIC_FILES: dict[str, tuple[str, str]] = {
    "/operator": ("operator.html", "text/html"),
    "/operator/operator.js": ("operator.js", "text/javascript"),
    "/operator/operator.css": ("operator.css", "text/css"),
}
#: Every path the page serves.
OPERATOR_PATHS = frozenset({*STATIC_FILES, SNAPSHOT_PATH})

#: Nothing but this origin: no script, style, image or connection elsewhere; never framed.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def _static(name: str) -> bytes:
    return (resources.files("ratekeeper.server") / "static" / name).read_bytes()


class OperatorPage:
    """The page's handlers over live components; see the module docstring. Event loop only."""

    def __init__(
        self,
        tap: OperatorTap,
        metrics: Metrics,
        store: Store,
        slicelet: Slicelet | None = None,
        clock: Callable[[], int] = time.time_ns,
        monotonic: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """``clock``: the server's wall clock (ns, the report processor's); ``monotonic``: the
        slicelet's (its load is averaged over it)."""
        self.tap = tap
        self._metrics = metrics
        self._store = store
        self._slicelet = slicelet
        self._clock = clock
        self._monotonic = monotonic
        self._files = {path: (_static(name), kind) for path, (name, kind) in STATIC_FILES.items()}
        self._sampler: asyncio.Task[None] | None = None

    @classmethod
    def over(
        cls,
        tap: OperatorTap | None,
        metrics: Metrics,
        store: Store,
        slicelet: Slicelet | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> OperatorPage | None:
        """The page over ``tap``; ``None`` without one (the page is off)."""
        return None if tap is None else cls(tap, metrics, store, slicelet, clock)

    def snapshot(self) -> dict[str, Any]:
        """The document at the clock's time, the rule counts sampled first."""
        now = self._clock()
        self.tap.sample_rules(self._metrics.rule_counts(), now)
        store = self._store
        pressure = store.pressure() if isinstance(store, PressureReporting) else None
        state = StoreState(store.healthy(), tuple(store.stats()), pressure)
        return build_snapshot(self.tap, state, self._cluster(), now)

    def _cluster(self) -> ClusterState | None:
        member = self._slicelet
        if member is None:
            return None
        load = member.view.take_load(self._monotonic())
        return ClusterState(
            member.address, member.state.value, member.target, member.assignment, load
        )

    async def static(self, request: web.Request) -> web.Response:
        body, kind = self._files[request.path]
        return web.Response(body=body, content_type=kind, charset="utf-8", headers=_HEADERS)

    async def snapshot_json(self, request: web.Request) -> web.Response:
        text = json.dumps(self.snapshot(), separators=(",", ":"), allow_nan=False)
        return web.Response(text=text, content_type="application/json", headers=_HEADERS)

    def add_routes(self, app: web.Application) -> None:
        """Serve the page on ``app``, sampling while it runs."""
        for path in STATIC_FILES:
            app.router.add_get(path, self.static)
        app.router.add_get(SNAPSHOT_PATH, self.snapshot_json)
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.stop)

    async def start(self, app: web.Application | None = None) -> None:
        """Sample the rule counts once per bucket from now on."""
        if self._sampler is None:
            self._sampler = asyncio.create_task(self._sample())

    async def stop(self, app: web.Application | None = None) -> None:
        """Stop sampling."""
        task, self._sampler = self._sampler, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample(self) -> None:
        interval = self.tap.bucket_ns / NS_PER_SECOND
        while True:
            self.tap.sample_rules(self._metrics.rule_counts(), self._clock())
            await asyncio.sleep(interval)
