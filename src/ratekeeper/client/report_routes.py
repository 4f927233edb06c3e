"""Where each server's reports go: its report listener once an answer named one.

A server started with ``--report-port`` serves ``Report`` on a second port over its own HTTP/2,
at a fraction of the gRPC port's CPU per call, and says so in every answer
(``ReportResponse.report_port``). The client is still given one address per server: it sends
its first report there, and its later ones to the same host at the port the answer named, on a
channel of its own (the same TLS and token). Watch and everything else stay on the address's
channel.

If the listener cannot be reached (UNAVAILABLE, UNIMPLEMENTED, or :data:`MISSES` deadlines in
a row before it ever answered: a firewall that drops the port; one slow answer on a busy host
is not that), the client reports to the address again and leaves the listener alone for
:data:`HOLD_OFF_NS`; any other refusal is the server's answer and is
left to the machine, as on the gRPC port. Thread safe (a lock held over no IO); both drivers
use it alike.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

__all__ = ["HOLD_OFF_NS", "MISSES", "ReportRoutes", "listener_target"]

C = TypeVar("C")  # a channel
F = TypeVar("F")  # a report call

#: How long a listener that could not be reached is left alone (ns).
HOLD_OFF_NS = 60_000_000_000
#: Deadlines in a row, the listener never having answered, that make it unreachable.
MISSES = 3
_UNREACHED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED})


def listener_target(address: str, port: int) -> str:
    """``address``'s host (``host:port``, ``[v6]:port``) at ``port``."""
    host = address.rpartition(":")[0] or address
    return f"{host}:{port}"


@dataclass(slots=True)
class _Route(Generic[C, F]):
    """One server's report listener, as last heard."""

    port: int
    channel: C
    call: F
    #: It answered a report at least once.
    answered: bool = False
    #: Deadlines in a row, while it never answered.
    misses: int = 0


class ReportRoutes(Generic[C, F]):
    """The report listeners heard of, by server address; ``open_`` makes the channel and its
    report call to a ``host:port`` target."""

    def __init__(self, open_: Callable[[str], tuple[C, F]]) -> None:
        self._open = open_
        self._routes: dict[str, _Route[C, F]] = {}
        self._held_until: dict[str, int] = {}
        self._lock = threading.Lock()

    def call(self, address: str) -> F | None:
        """The report call to ``address``'s listener (``None``: report to the address)."""
        route = self._routes.get(address)
        return None if route is None else route.call

    def heard(self, address: str, port: int, now: int, via_listener: bool) -> list[C]:
        """``address`` answered, naming listener ``port`` (0: none); ``via_listener``: the
        answer came from the listener. Returns channels no longer used, to close."""
        with self._lock:
            route = self._routes.get(address)
            if route is not None and route.port == port:
                route.answered = route.answered or via_listener
                return []
            if port and self._held_until.get(address, 0) > now:
                return []
            stale: list[C] = [] if route is None else [self._routes.pop(address).channel]
            if port:
                channel, call = self._open(listener_target(address, port))
                self._routes[address] = _Route(port, channel, call)
            return stale

    def failed(self, address: str, code: grpc.StatusCode | None, now: int) -> list[C]:
        """A report to ``address``'s listener failed with ``code``: if the listener looks
        unreachable, forget it for :data:`HOLD_OFF_NS`. Returns channels to close."""
        with self._lock:
            route = self._routes.get(address)
            if route is None:
                return []
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and not route.answered:
                route.misses += 1
                if route.misses < MISSES:
                    return []
            elif code not in _UNREACHED:
                return []
            del self._routes[address]
            self._held_until[address] = now + HOLD_OFF_NS
            return [route.channel]

    def forget(self, keep: set[str]) -> list[C]:
        """Drop the listeners of servers not in ``keep``; their channels, to close."""
        with self._lock:
            gone = [a for a in self._routes if a not in keep]
            return [self._routes.pop(a).channel for a in gone]
