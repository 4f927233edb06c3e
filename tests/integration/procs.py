"""Moved to :mod:`ratekeeper.testing.procs`; this name stays until the tests that import it
(tests/backends, tests/client, tests/server) import the package instead."""

from ratekeeper.testing.procs import (
    ManagedProcess,
    ProcessError,
    ReadyCheck,
    free_port,
    http_ok,
    log_line,
    port_open,
    start,
)

__all__ = [
    "ManagedProcess",
    "ProcessError",
    "ReadyCheck",
    "free_port",
    "http_ok",
    "log_line",
    "port_open",
    "start",
]
