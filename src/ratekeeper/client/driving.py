"""What the thread and the asyncio driver do alike: settle a finished call on the machine.

Both drivers carry out what the passive :class:`~ratekeeper.client.machine.LimiterMachine` and
its :class:`~ratekeeper.client.clerk.Clerk` ask for; they differ only in how they wait (a thread
blocking on a future, a task awaiting). What a call's outcome means for the machine is written
here once, so the two cannot drift.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc

from ratekeeper.client.clerk import Clerk
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.transport.channels import ChannelOption, describe_error

__all__ = ["RECONNECT", "Peers", "watch_error"]

#: How soon a channel to a server tries again after a failed connect: gRPC's default backoff
#: (1 s, growing 1.6x) turned a server restart of 0.7 s into 1.2 s of failed reports at every
#: client, past the second after which a failing server's backlog is forgiven (so the hits
#: admitted while it was down were never charged; issue 11, the simulator's server-restart).
#: A connect is one cheap attempt; at most one a second per client while a server stays down.
RECONNECT: tuple[ChannelOption, ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)

E = TypeVar("E")

log = logging.getLogger("ratekeeper.client.limiter")


def watch_error(clerk: Clerk, address: str, error: Exception) -> None:
    """Tell ``clerk`` the ``Watch`` to ``address`` failed with ``error``.

    An RPC error is the server's answer (``UNIMPLEMENTED``: it serves no assignment); anything
    else is a bug, logged, and must not end watching: the assignment would go stale.
    """
    now = time.monotonic_ns()
    if isinstance(error, grpc.RpcError):
        unimplemented = error.code() == grpc.StatusCode.UNIMPLEMENTED
        clerk.watch_failed(address, describe_error(error), now, unimplemented)
        return
    log.error("assignment watch failed; retrying", exc_info=error)
    clerk.watch_failed(address, "internal error", now)


class Peers(Generic[E]):
    """The one channel per server (with its calls) that a driver's reports and watches share.

    ``open_`` makes the entry for an address on first use. Safe across threads (the thread
    driver's reporter and watcher both ask for entries); the lock is never held over IO.
    """

    def __init__(self, open_: Callable[[str], E]) -> None:
        self._open = open_
        self._entries: dict[str, E] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> E:
        """The entry for ``address``, opened on first use."""
        with self._lock:
            entry = self._entries.get(address)
            if entry is None:
                entry = self._entries[address] = self._open(address)
            return entry

    def addresses(self) -> set[str]:
        """The servers an entry is open to."""
        with self._lock:
            return set(self._entries)

    def unwanted(self, machine: LimiterMachine) -> list[E]:
        """Remove and return the entries of servers neither in the assignment nor watched."""
        with self._lock:  # so a Watch cannot open one meanwhile for a new target
            wanted = {*machine.assignment.servers, machine.clerk.watching}
            return [self._entries.pop(a) for a in set(self._entries) - wanted]

    def clear(self) -> list[E]:
        """Remove and return every entry (to close them)."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        return entries
