"""A real etcd (Debian's ``etcd-server``): one member on free ports, its data in a given folder.

The HA tests start their own, stop it to see the cluster ride out an etcd outage, and start it
again on the same ports with the same data (``make sysdeps`` installs the package).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ratekeeper.testing.procs import Restartable, ToolMissing, free_port, port_open, start

__all__ = ["EtcdServer", "etcd_binary"]


def etcd_binary() -> str:
    """The etcd executable; raises :class:`ToolMissing` when it is not installed."""
    binary = shutil.which("etcd")
    if binary is None:
        raise ToolMissing("etcd is not installed (make sysdeps installs etcd-server)")
    return binary


class EtcdServer(Restartable):
    """One etcd member that can be stopped, frozen and brought back with its data."""

    def __init__(self, workdir: Path, name: str = "etcd") -> None:
        """Starts at once; raises :class:`ToolMissing` without etcd, ``ProcessError`` if it
        does not start."""
        self._binary = etcd_binary()
        self._workdir = workdir
        self._name = name
        #: The client port, the same across restarts.
        self.port = free_port()
        self._peer_port = free_port()
        self._process = None
        self.start()

    @property
    def endpoint(self) -> str:
        """What ``ratekeeper assigner --etcd`` takes."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (again) on :attr:`port` with the same data; waits until it accepts clients."""
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self._peer_port}"
        argv = [
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
        self._process = start(
            argv, name=self._name, log_dir=self._workdir, ready=port_open(self.port), timeout=20
        )
