"""What both Limiters offer, written once: decisions, stats, health and metrics on a machine.

``ratekeeper.Limiter`` and ``ratekeeper.aio.Limiter`` are this class plus a driver (a reporter
thread or task) for the :class:`~ratekeeper.client.machine.LimiterMachine` it holds. Deciding
is never awaited and never waits on the network, so it is the same plain method for both.

**The decision** (:meth:`BaseLimiter.allow`) reads only local state: one dict lookup, one clock
read, a comparison against the key's ``earliest`` admissible instant, one store, one count. Every
instruction was folded into that number and the key's pace when it arrived
(:mod:`ratekeeper.client.keystate`), including a key decided by several lanes (several limits,
or a grant above its policy's rate), whose flat fields route the same steps through every lane.
``earliest`` is read-modify-written without a lock: two threads deciding one key at the same
instant may both admit; both hits are counted and reported, so the server's bucket sees them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from time import monotonic_ns
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from ratekeeper.client.decide import Decision, decide
from ratekeeper.client.decorator import limit as limit_decorator
from ratekeeper.client.health import ServerHealth
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.client.options import LimiterOptions
from ratekeeper.client.policy import Key, LimitsArg
from ratekeeper.client.stats import LimiterStats
from ratekeeper.config import PolicyTree
from ratekeeper.core.slices import Assignment
from ratekeeper.transport.tls import TlsSettings

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

__all__ = ["BaseLimiter"]

P = ParamSpec("P")
R = TypeVar("R")


class BaseLimiter:
    """Decisions and observability over a :class:`LimiterMachine`; see the module docstring.

    Arguments (the same for both twins):

    * ``servers``: one address (``"host:port"``: a single server, or any member of a cluster,
      whose assignment is then learned by ``Watch`` and followed), several (the hash space split
      evenly among them, in order), or an :class:`~ratekeeper.core.slices.Assignment`; a
      malformed address raises ``ValueError`` here;
    * ``domain``: the rate limit domain every key belongs to (default ``"default"``);
    * ``limit``: inline limits for every key (``"100/s burst 200"``, ``"10/s; 1000/day"``, or
      :class:`~ratekeeper.Limit` values), or a mapping of glob patterns over plain-string keys
      to limits (first match wins). Sent with each report, so a server counts them even without
      a configured rule (a configured rule wins). Every limit is enforced locally too;
    * ``policies``: a policy tree or the path of a config file, matched like the server does;
    * ``report_interval``: seconds between reports (default 0.1);
    * ``client_id``: this client's identity on the servers (default: host, pid, random suffix);
    * ``max_keys``: most keys tracked at once; ``max_keys_per_report``: most keys per report;
    * ``timeout``: seconds each report may take (default: half the interval);
    * ``tls``: a :class:`~ratekeeper.transport.tls.TlsSettings` to report over TLS (its ``ca``
      to verify servers, ``cert`` and ``key`` for mTLS); ``None``: plaintext;
    * ``auth_token``: the shared token of servers started with ``--auth-token-file``.

    Keys are plain strings, named on the wire by the single entry ``("key", name)``, or tuples of
    ``(key, value)`` descriptor entries.
    """

    def __init__(
        self,
        servers: str | Sequence[str] | Assignment,
        *,
        domain: str = "default",
        limit: LimitsArg | Mapping[str, LimitsArg] | None = None,
        policies: PolicyTree | str | os.PathLike[str] | None = None,
        report_interval: float = 0.1,
        client_id: str | None = None,
        max_keys: int = 100_000,
        max_keys_per_report: int = 10_000,
        timeout: float | None = None,
        tls: TlsSettings | None = None,
        auth_token: str | None = None,
    ) -> None:
        options = LimiterOptions(domain, limit, policies, report_interval, client_id,
                                 max_keys, max_keys_per_report, timeout)  # fmt: skip
        machine = LimiterMachine(servers, options)
        #: The rate limit domain of every key (the integrations name their policy after it).
        self.domain = domain
        self._machine = machine
        # the same dict and bound method the machine keeps: no indirection on the decision path
        self._states = machine.states
        self._track = machine.track
        self._registries: list[CollectorRegistry] = []
        #: How every channel to a server is secured (``open_channel``'s ``tls`` and ``token``).
        self._tls, self._auth_token = tls, auth_token
        self._start()

    def _start(self) -> None:
        """Set up the driver (a reporter thread or task); the last step of construction."""

    # --- deciding ------------------------------------------------------------------------------

    def allow(self, key: Key) -> bool:
        """Admit one hit for ``key``? Local state only: no I/O, no lock once the key is known."""
        try:
            st = self._states[key]
        except KeyError:
            st = self._track(key)
        now = monotonic_ns()
        earliest = st.earliest
        if earliest > now:
            next(st.rejected)
            return False
        # pacing.admit for one hit, inlined: a call here would weigh on every hit. A key with
        # several lanes takes the same steps (its flat fields route them: see keystate)
        if earliest < now - st.tolerance:
            earliest = now - st.burst  # the schedule fell behind: restart it, burst included
        st.earliest = earliest + st.emission
        next(st.admitted)
        return True

    def acquire(self, key: Key, hits: int = 1) -> Decision:
        """Decide ``hits`` at once and say why: remaining, retry-after.

        ``hits=0`` counts nothing and tells whether one hit would be admitted now.
        """
        try:
            st = self._states[key]
        except KeyError:
            st = self._track(key)
        return decide(st, monotonic_ns(), hits)

    def limit(
        self, key: Key | Callable[..., Key], hits: int = 1
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """A decorator refusing calls past the limit with :class:`~ratekeeper.RateLimited`.

        ``key`` is a key, or a function of the call's arguments returning one:
        ``@limiter.limit(key=lambda user, **_: user)``.
        """
        return limit_decorator(self, key, hits)

    # --- observing -----------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        """This client's identity on the servers."""
        return self._machine.client_id

    @property
    def stats(self) -> LimiterStats:
        """Counts about this limiter: reports answered and failed, keys tracked, instructions
        in force, hits admitted while failing open (see :class:`LimiterStats`)."""
        machine = self._machine
        stats = machine.stats
        stats.tracked = len(self._states)
        table = machine.clerk.table
        stats.owners = len(table.servers)
        stats.generation = (table.generation.incarnation, table.generation.number)
        return stats

    @property
    def ready(self) -> bool:
        """The assignment is known, every server of it has answered and none is failing
        repeatedly.

        Given one address, the assignment is known once that address answered a ``Watch`` (a
        cluster member), or refused it as ``UNIMPLEMENTED`` (a single server: it owns every
        key); given several addresses or an assignment, at once. ``False`` means some keys are
        decided by the local limiter only (failing open): fine for a moment, but a readiness
        probe should see it. ``wait_ready(timeout)`` waits for it.
        """
        return self._machine.ready

    @property
    def servers(self) -> Mapping[str, ServerHealth]:
        """How each server has answered: counts, the last error, when it last answered."""
        return dict(self._machine.health.servers)

    def register_metrics(self, registry: CollectorRegistry | None = None) -> None:
        """Export :attr:`stats`, :attr:`ready` and per-server counts as Prometheus metrics.

        Read at scrape time (nothing is added to the decision path). ``registry`` defaults to
        ``prometheus_client``'s global one; the metrics go away when the limiter closes.
        Raises ``ImportError`` if ``prometheus_client`` is not installed.
        """
        from ratekeeper.client.metrics import register

        self._registries.append(register(self._machine, registry))

    def _unregister_metrics(self) -> None:
        from ratekeeper.client.metrics import unregister

        for registry in self._registries:
            unregister(self._machine, registry)
        self._registries.clear()
