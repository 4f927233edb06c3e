"""Helpers for testing ratekeeper and the services around it, shipped with the package.

Tests, benchmarks and the simulator all start the same things the same way; each helper is one
module, imported by name (this package imports nothing itself, so ``ratekeeper.testing.procs``
stays a standard-library-only import for processes that must start fast):

* :mod:`~ratekeeper.testing.procs`: start a process with its log in a file, wait until it is
  ready (a port, an HTTP 200, a log line), stop it (SIGTERM, then SIGKILL); free ports.
* :mod:`~ratekeeper.testing.server_process`: ``ratekeeper serve`` as a process on free ports.
* :mod:`~ratekeeper.testing.redis_server`: a redis-server that can be stopped and frozen.
* :mod:`~ratekeeper.testing.envoy_proxy`: Envoy with the rate limit filter, and an upstream.
* :mod:`~ratekeeper.testing.replicas`: N server replicas in this process, on free ports.
* :mod:`~ratekeeper.testing.clock`: a clock that moves only when told.
* ``ratekeeper.testing.model``: the virtual-time model of a fleet (its own package).

A program a helper needs that is not installed raises
:class:`~ratekeeper.testing.procs.ToolMissing`; the test suite turns it into a skip.
Nothing here edits ``sys.path`` or imports the test suite.
"""
