"""The Envoy files docs/envoy.md publishes, run as they are, and what drives them.

The end-to-end tests and ``python -m bench.envoy_bench`` load the guide's own files with only
their port numbers (and the sidecar's socket) replaced, so the guide cannot rot: a file that
stops working fails a test. :func:`sidecar_process` runs ``ratekeeper sidecar``; :func:`offer`
sends one user's requests at a fixed rate and counts the admitted ones.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ratekeeper.testing.envoy_proxy import envoy_on_file, user_status
from ratekeeper.testing.procs import free_port, http_ok, start
from ratekeeper.testing.server_process import START_TIMEOUT_S

__all__ = [
    "RLQS_PORTS",
    "SIDECAR_PORTS",
    "SIDECAR_SOCKET",
    "Sidecar",
    "guide_envoy",
    "offer",
    "ratelimit_config",
    "rlqs_config",
    "sidecar_process",
    "templated",
]

#: The ports docs/envoy/rate_limit_quota.yaml names, by role.
RLQS_PORTS: Final = {"listen": 10000, "admin": 9901, "ratekeeper": 8081, "upstream": 9000}
#: The ports docs/envoy/ratelimit_sidecar.yaml names, by role.
SIDECAR_PORTS: Final = {"listen": 10000, "admin": 9901, "upstream": 9000}
#: Where docs/envoy/ratelimit_sidecar.yaml expects the sidecar's unix socket.
SIDECAR_SOCKET: Final = "/run/ratekeeper/sidecar.sock"
_PIPE: Final = f"{{pipe: {{path: {SIDECAR_SOCKET}}}}}"


def templated(text: str, guide_ports: Mapping[str, int], ports: Mapping[str, int]) -> str:
    """``text`` with each port of ``guide_ports`` (by role) replaced by ``ports[role]``; each
    must be named exactly once, so a file that grows a second listener is noticed."""
    for role, port in guide_ports.items():
        text, count = re.subn(rf"\bport_value: {port}\b", f"port_value: {ports[role]}", text)
        if count != 1:
            raise ValueError(f"the guide file should name port {port} ({role}) exactly once")
    return text


def rlqs_config(path: Path, ports: Mapping[str, int]) -> str:
    """docs/envoy/rate_limit_quota.yaml on ``ports`` (roles of :data:`RLQS_PORTS`)."""
    return templated(path.read_text(), RLQS_PORTS, ports)


def ratelimit_config(path: Path, ports: Mapping[str, int], rls: Path | int) -> str:
    """docs/envoy/ratelimit_sidecar.yaml on ``ports``, calling the RLS endpoint ``rls``: a unix
    socket path, or a TCP port on loopback (a sidecar's ``--grpc-port`` or a server's: the file's
    comment says how)."""
    text = templated(path.read_text(), SIDECAR_PORTS, ports)
    if text.count(_PIPE) != 1:
        raise ValueError(f"the guide file should name the socket {SIDECAR_SOCKET} exactly once")
    if isinstance(rls, int):
        return text.replace(_PIPE, f"{{socket_address: {{address: 127.0.0.1, port_value: {rls}}}}}")
    return text.replace(f"path: {SIDECAR_SOCKET}", f"path: {rls}")


@contextlib.contextmanager
def guide_envoy(config: str, ports: Mapping[str, int], log_dir: Path, name: str) -> Iterator[int]:
    """Envoy on the templated guide text ``config``; yields its listener port."""
    with envoy_on_file(config, ports["listen"], ports["admin"], log_dir, name):
        yield ports["listen"]


@dataclass(frozen=True, slots=True)
class Sidecar:
    """A running ``ratekeeper sidecar``: its unix socket, ports and process id."""

    socket: Path
    grpc_port: int
    http_port: int
    pid: int


@contextlib.contextmanager
def sidecar_process(
    server: str,
    policy: Path,
    log_dir: Path,
    name: str,
    *,
    grpc_port: int = 0,
    flags: Sequence[str] = (),
) -> Iterator[Sidecar]:
    """``ratekeeper sidecar`` reporting to ``server`` (HOST:PORT) on a unix socket and a TCP
    port, ready once its ``/healthcheck`` answers."""
    socket = log_dir / f"{name}.sock"
    grpc_port, http_port = grpc_port or free_port(), free_port()
    argv = [sys.executable, "-m", "ratekeeper.cli.main", "sidecar"]
    argv += ["--server", server, "--config", str(policy)]
    argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    argv += ["--grpc-uds", str(socket), *flags]
    ready = http_ok(http_port, "/healthcheck")
    with start(argv, name=name, log_dir=log_dir, ready=ready, timeout=START_TIMEOUT_S) as proc:
        yield Sidecar(socket, grpc_port, http_port, proc.pid)


def offer(port: int, user: str, rate: float, until: float, sent: list[int] | None = None) -> int:
    """Send ``rate`` requests/s through Envoy on ``port`` as ``user`` until ``until``
    (``time.monotonic``); the number answered 200. ``sent``, if given, gets the number sent
    appended (a loaded machine may not keep up with ``rate``)."""
    admitted, requests, step, due = 0, 0, 1.0 / rate, time.monotonic()
    while due < until:
        requests += 1
        if user_status(port, user) == 200:
            admitted += 1
        due += step
        time.sleep(max(0.0, due - time.monotonic()))
    if sent is not None:
        sent.append(requests)
    return admitted
