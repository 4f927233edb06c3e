"""How each server is answering, and when to say so: fail-open must be loud.

A Limiter whose server is wrong or down still decides (it fails open onto its local limiter), so
the only signs an operator gets are the ones kept here: per-server counts of reports answered and
failed, the last error, a warning log line after a few failed cycles in a row (then at most one
per ``warn_every_ns`` per server, so an outage does not flood the log), and an info line when the
server answers again. Passive: every method takes ``now`` (monotonic ns).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["Health", "ServerHealth"]

log = logging.getLogger("ratekeeper.client")


@dataclass(slots=True)
class ServerHealth:
    """What one server's answers have been (plain values, safe to read from any thread)."""

    #: The server's address.
    address: str
    #: Reports it answered, and reports that failed or timed out.
    answered: int = 0
    failed: int = 0
    #: Reports failed since its last answer.
    failing_for: int = 0
    #: The last error, in one line (``None``: none yet).
    last_error: str | None = None
    #: When it last answered (monotonic ns; ``None``: never).
    answered_at: int | None = None
    #: When the last warning about it was logged (monotonic ns).
    warned_at: int | None = None

    @property
    def ok(self) -> bool:
        """It has answered, and its latest reports did not fail repeatedly."""
        return self.answered_at is not None and self.failing_for < Health.WARN_AFTER


class Health:
    """Every server's :class:`ServerHealth`, and the warnings about them."""

    #: Failed reports in a row before a server is called unreachable (logged, not ready).
    WARN_AFTER = 3

    def __init__(self, warn_every_ns: int) -> None:
        self._warn_every = warn_every_ns
        self.servers: dict[str, ServerHealth] = {}

    def of(self, address: str) -> ServerHealth:
        health = self.servers.get(address)
        if health is None:
            health = self.servers[address] = ServerHealth(address)
        return health

    def answered(self, address: str, now: int) -> None:
        health = self.of(address)
        if health.failing_for >= self.WARN_AFTER:
            log.info(
                "ratekeeper server %s answers again after %d failed reports",
                address,
                health.failing_for,
            )
        health.answered += 1
        health.failing_for = 0
        health.answered_at = now

    def failed(self, address: str, error: str, now: int) -> None:
        health = self.of(address)
        health.failed += 1
        health.failing_for += 1
        health.last_error = error
        if health.failing_for < self.WARN_AFTER:
            return
        if health.warned_at is not None and now - health.warned_at < self._warn_every:
            return
        health.warned_at = now
        never = " (it has never answered)" if health.answered_at is None else ""
        log.warning(
            "ratekeeper server %s failed %d reports in a row%s, last: %s; failing open: the keys "
            "it owns are held only to this process's local limits",
            address,
            health.failing_for,
            never,
            error,
        )

    def failing(self, address: str) -> bool:
        """Whether the server's latest report failed (its keys are failing open)."""
        health = self.servers.get(address)
        return health is not None and health.failing_for > 0

    def ready(self, addresses: frozenset[str]) -> bool:
        """Every one of ``addresses`` has answered and is not failing repeatedly."""
        return all(address in self.servers and self.servers[address].ok for address in addresses)
