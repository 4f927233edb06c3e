"""The real services integration tests and benchmarks run: ``ratekeeper serve`` and an upstream.

``ratekeeper serve`` runs as a subprocess of the current interpreter (``-m``, so no PATH lookup),
bound to free loopback ports, and counts as ready when ``/healthcheck`` answers 200. The upstream
is a stdlib HTTP server on a thread: a backend for Envoy to route to, answering 200 to any GET.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .procs import ManagedProcess, free_port, http_ok, start

__all__ = ["RatekeeperServer", "http_get", "ratekeeper_server", "upstream_http"]


@dataclass(frozen=True, slots=True)
class RatekeeperServer:
    """A running ``ratekeeper serve``."""

    #: The process (stop it early with ``process.stop()`` to test failure modes).
    process: ManagedProcess
    #: The gRPC port (Envoy RLS).
    grpc_port: int
    #: The HTTP port (/healthcheck, /metrics, /json).
    http_port: int

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def metric(self, sample: str, **labels: str) -> float:
        """The sum of ``/metrics`` samples named ``sample`` whose labels include ``labels``."""
        status, _, body = http_get(self.http_port, "/metrics")
        assert status == 200, f"/metrics answered {status}"
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == sample and labels.items() <= s.labels.items():
                    total += s.value
        return total


@contextlib.contextmanager
def ratekeeper_server(
    config: Path,
    log_dir: Path,
    *,
    name: str = "ratekeeper",
    env: Mapping[str, str] | None = None,
    python_args: Sequence[str] = (),
) -> Iterator[RatekeeperServer]:
    """Run ``ratekeeper serve --config <config>`` on free ports until the block exits.

    ``python_args`` go to the interpreter before ``-m``: ``("-m", "cProfile", "-o", path)``
    profiles the server (the profile is written when SIGTERM ends it cleanly).
    """
    grpc_port, http_port = free_port(), free_port()
    argv = [sys.executable, *python_args, "-m", "ratekeeper.cli.main", "serve"]
    argv += ["--config", str(config)]
    argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    ready = http_ok(http_port, "/healthcheck")
    # A cold interpreter on a loaded two-core machine can take several seconds to import grpc.
    with start(argv, name=name, log_dir=log_dir, ready=ready, timeout=60, env=env) as proc:
        yield RatekeeperServer(proc, grpc_port, http_port)


def http_get(
    port: int, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """``GET http://127.0.0.1:port/path``: status, headers and body (errors are answers too)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


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
