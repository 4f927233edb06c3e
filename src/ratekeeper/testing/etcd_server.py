"""A real etcd (Debian's ``etcd-server``): one member on free ports, its data in a given folder.

The HA tests start their own, stop it to see the cluster ride out an etcd outage, and start it
again on the same ports with the same data (``make sysdeps`` installs the package).
"""

from __future__ import annotations

from pathlib import Path

from ratekeeper.testing.procs import Restartable, free_port, installed

__all__ = ["EtcdServer", "etcd_binary"]


def etcd_binary() -> str:
    """The etcd executable; raises :class:`ToolMissing` when it is not installed."""
    return installed("etcd", "make sysdeps installs etcd-server")


class EtcdServer(Restartable):
    """One etcd member that can be stopped, frozen and brought back with its data.

    Starts at once on :attr:`port` (the client port); raises :class:`ToolMissing` without etcd,
    ``ProcessError`` if it does not start.
    """

    start_timeout = 20.0

    def __init__(self, workdir: Path, name: str = "etcd") -> None:
        self._peer_port = free_port()
        super().__init__(etcd_binary(), workdir, name)

    @property
    def endpoint(self) -> str:
        """What ``ratekeeper assigner --etcd`` takes."""
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self._peer_port}"
        return [
            self._binary,
            "--name",
            self._name,
            "--data-dir",
            str(self._workdir / f"{self._name}.data"),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"{self._name}={peer}",
            "--log-level",
            "warn",
        ]
