"""A cluster member's part of a server process's start and stop, in the order they must run.

The composition root (:mod:`ratekeeper.server.app`) calls three steps, between its own:

1. :meth:`MemberLifecycle.start`, once the gRPC port is bound and the server serves: the
   embedded assigner (if any) learns its address and starts its timer, the slicelet starts
   heartbeating and reports RUNNING;
2. :meth:`MemberLifecycle.leave`, first thing on stop, while the server still serves: the
   member drains (its slices move away and are handed off), then held Watch calls are answered
   so the gRPC server's stop does not wait out their long polls;
3. :meth:`MemberLifecycle.stop`, once gRPC has stopped: heartbeats and the timer end.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

from ratekeeper.assigner.machine import AssignerMachine
from ratekeeper.assigner.server import AssignerService, new_incarnation
from ratekeeper.server.settings import ClusterSettings, ListenerSettings
from ratekeeper.server.slicelet import Slicelet

__all__ = ["MemberLifecycle", "advertised", "embedded_assigner"]


def advertised(cluster: ClusterSettings, listeners: ListenerSettings, grpc_port: int) -> str:
    """This member's address in assignments: the configured one, else where gRPC listens (a
    wildcard host is replaced by this machine's name, which other machines can resolve)."""
    if cluster.advertise:
        return cluster.advertise
    host = listeners.host
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{grpc_port}"


def embedded_assigner(cluster: ClusterSettings) -> AssignerService:
    """The assigner a server embeds; its address is set once the gRPC port is bound."""
    clock = time.monotonic_ns
    machine = AssignerMachine(cluster.assigner.machine(), new_incarnation(), clock())
    return AssignerService(machine, cluster.assigner, address="", clock=clock)


class MemberLifecycle:
    """Starts and stops one member's slicelet and embedded assigner; see the module docstring."""

    def __init__(self, slicelet: Slicelet, assigner: AssignerService | None) -> None:
        self._slicelet = slicelet
        self._assigner = assigner
        self._timer: asyncio.Task[None] | None = None
        self._started = False

    async def start(self, address: str) -> None:
        """Join the cluster as ``address`` (hosting the assigner there if it is embedded)."""
        if self._assigner is not None:
            self._assigner.address = address
            self._timer = asyncio.create_task(self._assigner.run(), name="assigner")
        await self._slicelet.start(address)
        self._slicelet.serving()
        self._started = True

    async def leave(self) -> None:
        """Drain (bounded by ``cluster.drain_timeout_s``), then answer held Watch calls."""
        if self._started:
            await self._slicelet.drain()
            self._slicelet.release_watchers()
        if self._assigner is not None:
            self._assigner.close()  # its held Watch calls answer now too

    async def stop(self) -> None:
        """Stop heartbeating and the assigner's timer."""
        await self._slicelet.stop()
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
