"""``ratekeeper serve`` as a real process, for integration tests and benchmarks.

The server runs as a subprocess of the current interpreter (``-m``, so no PATH lookup), bound
to free loopback ports, and counts as ready when ``/healthcheck`` answers 200.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ratekeeper.testing.procs import (
    ManagedProcess,
    ReadyCheck,
    free_port,
    http_get,
    http_ok,
    start,
)

__all__ = ["RatekeeperServer", "metric_samples", "ratekeeper_server", "serve_argv", "serving"]

#: Seconds a server gets to become ready: a cold interpreter on a loaded two-core machine can
#: take several to import grpc.
START_TIMEOUT_S = 60.0


def serve_argv(
    config: Path,
    grpc_port: int,
    http_port: int,
    *flags: str,
    python_args: Sequence[str] = (),
) -> list[str]:
    """The command line of ``ratekeeper serve`` on these ports, with extra ``flags``.

    ``python_args`` go to the interpreter before ``-m``: ``("-m", "cProfile", "-o", path)``
    profiles the server (the profile is written when SIGTERM ends it cleanly).
    """
    return [
        *(sys.executable, *python_args, "-m", "ratekeeper.cli.main", "serve"),
        *("--config", str(config), "--grpc-port", str(grpc_port), "--http-port", str(http_port)),
        *flags,
    ]


def serving(http_port: int) -> ReadyCheck:
    """Ready once the server's ``/healthcheck`` answers 200 (config loaded, store open)."""
    return http_ok(http_port, "/healthcheck")


def metric_samples(http_port: int) -> list[Sample]:
    """Every sample of the server's ``/metrics``; raises ``OSError`` if it cannot be reached."""
    status, _, body = http_get(http_port, "/metrics")
    if status != 200:
        raise OSError(f"/metrics on port {http_port} answered {status}")
    return [s for family in text_string_to_metric_families(body.decode()) for s in family.samples]


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
        samples = metric_samples(self.http_port)
        return sum(
            s.value for s in samples if s.name == sample and labels.items() <= s.labels.items()
        )


@contextlib.contextmanager
def ratekeeper_server(
    config: Path,
    log_dir: Path,
    *,
    name: str = "ratekeeper",
    env: Mapping[str, str] | None = None,
    python_args: Sequence[str] = (),
    flags: Sequence[str] = (),
) -> Iterator[RatekeeperServer]:
    """Run ``ratekeeper serve --config <config> [flags]`` on free ports until the block exits.

    ``env`` is added to the environment; ``python_args`` are as for :func:`serve_argv`.
    """
    grpc_port, http_port = free_port(), free_port()
    argv = serve_argv(config, grpc_port, http_port, *flags, python_args=python_args)
    ready = serving(http_port)
    with start(
        argv, name=name, log_dir=log_dir, ready=ready, timeout=START_TIMEOUT_S, env=env
    ) as proc:
        yield RatekeeperServer(proc, grpc_port, http_port)
