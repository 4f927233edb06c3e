"""A real redis-server: on a free port, in a given directory, persisting nothing.

Tests that break Redis on purpose (stop it, freeze it with SIGSTOP) start their own; the rest
share one per session (the ``redis_server`` fixture of ``tests/conftest.py``) and keep apart by
key prefix. The simulator starts one per run of the legacy architecture.
"""

from __future__ import annotations

from pathlib import Path

from ratekeeper.testing.procs import Restartable, installed

__all__ = ["RedisServer", "redis_binary"]


def redis_binary() -> str:
    """The redis-server executable; raises :class:`ToolMissing` when it is not installed."""
    return installed("redis-server", "make sysdeps installs it")


class RedisServer(Restartable):
    """One redis-server process that can be stopped, frozen and brought back on the same port."""

    def __init__(
        self,
        workdir: Path,
        name: str = "redis",
        unixsocket: Path | None = None,
        tls_cert: Path | None = None,
    ) -> None:
        """``unixsocket``: listen there too; ``tls_cert``: a PEM file holding the certificate
        and its key, served (TLS only) on :attr:`port`. Starts at once; raises
        :class:`ToolMissing` without redis-server and ``ProcessError`` if it does not start."""
        self._unixsocket = unixsocket
        self._tls_cert = tls_cert
        super().__init__(redis_binary(), workdir, name)

    @property
    def url(self) -> str:
        """The URL clients and ``--backend`` take (``rediss://`` with the CA when TLS)."""
        if self._tls_cert is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self._tls_cert}"
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        port = str(self.port)
        argv = [self._binary, "--bind", "127.0.0.1", "--port", port]
        if self._tls_cert is not None:
            cert = str(self._tls_cert)
            argv[-2:] = ["--port", "0", "--tls-port", port, "--tls-auth-clients", "no"]
            argv += ["--tls-cert-file", cert, "--tls-key-file", cert, "--tls-ca-cert-file", cert]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self._workdir)]
        if self._unixsocket is not None:
            argv += ["--unixsocket", str(self._unixsocket), "--unixsocketperm", "700"]
        return argv
