"""What every benchmark stack is: a context manager over the processes it starts, and the relays
that put the run's network model in front of a port.

A subclass starts its processes in :meth:`Stacked._start`, registering each one's stop on
``self._exit``; leaving the block (or a failure while starting) stops all of them, newest first.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Self

from bench.sim.relay import start_relay
from bench.sim.spec import NetworkModel

__all__ = ["REPO", "Stacked"]

#: The checkout's root: the working directory of every process a stack starts.
REPO = Path(__file__).resolve().parents[2]


class Stacked:
    """Everything started in :meth:`_start`, stopped on exit; logs go to ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _start(self) -> None:
        raise NotImplementedError

    def _relayed(self, port: int, network: NetworkModel, seed: int, name: str) -> int:
        """``port`` as a remote host sees it: through a relay applying ``network`` (``seed``
        drawing its delays) when the network is emulated, else ``port`` itself."""
        if not network.emulated:
            return port
        relay, listening = start_relay(
            port, network, seed, name=name, log_dir=self.workdir, cwd=REPO
        )
        self._exit.callback(relay.stop)
        return listening
