"""Moved to :mod:`ratekeeper.testing.server_process` (``http_get`` to
:mod:`ratekeeper.testing.procs`, ``upstream_http`` to :mod:`ratekeeper.testing.envoy_proxy`);
this name stays until the tests that import it (tests/client) import the package instead."""

from ratekeeper.testing.envoy_proxy import upstream_http
from ratekeeper.testing.procs import http_get
from ratekeeper.testing.server_process import RatekeeperServer, ratekeeper_server

__all__ = ["RatekeeperServer", "http_get", "ratekeeper_server", "upstream_http"]
