"""Budgets: how much of a bounded store one party may hold, so no party can fill it alone.

A counter with nothing left (over its limit, in debt) cannot be evicted without handing quota
back to exactly the key being limited, so a store full of them refuses every new key. One party
creating many such counters (a flood of distinct keys under a 1/year rule) used to lock every
other party out until they recovered (issue 16 item 3). Budgets stop the party before the store
is full: each new counter is charged to

* its **domain**, which may hold at most ``domain_share`` of the store's capacity: the domains
  that create counters on the RLS path are the policy's (a request for another domain matches
  no rule), so a flood through one domain leaves the others their room;
* the **reporting client** whose report created it, at most ``client_share``;
* all **reported** counters together, at most ``reported_share``: client ids and the domains of
  inline limits are chosen by the client, so a client rotating both is held to this pool, and
  the RLS path keeps the rest.

A new counter whose charge would put any of its parties over budget is refused, as at the key
cap: that party's new keys are told "over limit, retry in a second" until its own counters
recover and expire. Existing counters are never touched, so nothing limited gets quota back.

Pure accounting (no clock, no IO); the memory store calls it on every counter it adds or drops.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ratekeeper.errors import ConfigError

__all__ = ["BudgetSettings", "Budgets", "PressureReporting", "StorePressure"]

#: Longest party name kept for a health line (domains and client ids are untrusted text).
_NAME_CHARS = 64


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """Shares of a store's capacity each party may hold (1.0: no budget of that kind)."""

    #: Most of the capacity one domain's counters may hold.
    domain_share: float = 0.5
    #: Most of the capacity the counters one reporting client created may hold.
    client_share: float = 0.25
    #: Most of the capacity all report-created counters together may hold.
    reported_share: float = 0.75
    #: Held / capacity from which the store says it is under pressure (health, metrics).
    pressure_ratio: float = 0.9

    def __post_init__(self) -> None:
        for name in ("domain_share", "client_share", "reported_share", "pressure_ratio"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"must lie in (0, 1], got {value}", key=f"store.budgets.{name}")


@dataclass(frozen=True, slots=True)
class StorePressure:
    """How full a store is, and who is at budget; read for ``/healthcheck`` and metrics."""

    #: Counters held, and the most the store holds.
    held: int
    capacity: int
    #: New keys refused so far because a party was at its budget.
    refused_over_budget: int
    #: Parties at their budget now (``domain 'rl'``, ``client 'x'``, ``reported``), at most a few.
    at_budget: tuple[str, ...]
    #: :attr:`BudgetSettings.pressure_ratio`.
    ratio: float
    #: What :attr:`held` and :attr:`capacity` count (Redis reports its memory in bytes).
    unit: str = "counters"

    @property
    def fill(self) -> float:
        """Held / capacity."""
        return self.held / self.capacity

    @property
    def under_pressure(self) -> bool:
        """Full past the ratio, or a party at its budget (its new keys are refused)."""
        return self.fill >= self.ratio or bool(self.at_budget)

    def describe(self) -> str:
        """One line for an operator."""
        line = f"store holds {self.held} of {self.capacity} {self.unit} ({self.fill:.0%})"
        if self.at_budget:
            line += f"; at budget, new keys refused: {', '.join(self.at_budget)}"
        return line


@runtime_checkable
class PressureReporting(Protocol):
    """A store that can say how full it is (the memory store in counters; Redis in bytes)."""

    def pressure(self) -> StorePressure:
        """The current fill and who is at budget."""
        ...


class Budgets:
    """Counters held per domain, per reporting client and reported in all, against budgets."""

    #: At most this many parties are named in :attr:`StorePressure.at_budget`.
    SHOWN = 4

    def __init__(self, capacity: int, settings: BudgetSettings) -> None:
        self.settings = settings
        self.capacity = capacity
        self._domain_cap = _cap(capacity, settings.domain_share)
        self._client_cap = _cap(capacity, settings.client_share)
        self._reported_cap = _cap(capacity, settings.reported_share)
        self._domains: dict[str, int] = {}
        self._clients: dict[str, int] = {}
        self._reported = 0
        #: Parties at their budget now (kept as counts cross the cap, so reading is cheap).
        self._full: dict[str, None] = {}
        #: New keys refused because a party was at its budget.
        self.refused = 0

    def admits(self, domain: str, client: str) -> bool:
        """Whether one more counter of ``domain``, created by ``client`` ("": not a report),
        stays within every budget; counts a refusal when it does not."""
        if self._domains.get(domain, 0) < self._domain_cap and (
            not client
            or (
                self._clients.get(client, 0) < self._client_cap
                and self._reported < self._reported_cap
            )
        ):
            return True
        self.refused += 1
        return False

    def add(self, domain: str, client: str) -> None:
        """A counter was created (or imported) for ``domain`` by ``client``."""
        self._count(self._domains, domain, 1, self._domain_cap, "domain ")
        if client:
            self._count(self._clients, client, 1, self._client_cap, "client ")
            self._reported += 1
            self._mark("reported", self._reported >= self._reported_cap)

    def remove(self, domain: str, client: str) -> None:
        """A counter of ``domain`` created by ``client`` was dropped or evicted."""
        self._count(self._domains, domain, -1, self._domain_cap, "domain ")
        if client:
            self._count(self._clients, client, -1, self._client_cap, "client ")
            self._reported -= 1
            self._mark("reported", self._reported >= self._reported_cap)

    def clear(self) -> None:
        """Every counter was dropped."""
        self._domains.clear()
        self._clients.clear()
        self._full.clear()
        self._reported = 0

    def _count(self, counts: dict[str, int], name: str, step: int, cap: int, kind: str) -> None:
        held = counts.get(name, 0) + step
        if held > 0:
            counts[name] = held
        else:
            counts.pop(name, None)
        if (held >= cap) != (held - step >= cap):  # crossed the budget: named only then
            self._mark(kind + _shown(name), held >= cap)

    def _mark(self, party: str, full: bool) -> None:
        if full:
            self._full[party] = None
        else:
            self._full.pop(party, None)

    def pressure(self, held: int) -> StorePressure:
        """The store's pressure with ``held`` counters."""
        full = list(itertools.islice(self._full, self.SHOWN + 1))
        if len(full) > self.SHOWN:
            full = [*full[: self.SHOWN], f"and {len(self._full) - self.SHOWN} more"]
        return StorePressure(
            held, self.capacity, self.refused, tuple(full), self.settings.pressure_ratio
        )


def _cap(capacity: int, share: float) -> int:
    """Most counters a party with ``share`` may hold; a share of 1 is no budget at all (the
    store's own cap, with its eviction, is the only bound)."""
    return max(1, int(capacity * share)) if share < 1.0 else sys.maxsize


def _shown(name: str) -> str:
    """``name`` quoted, cut to a bounded length (it is untrusted text)."""
    return repr(name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS] + "…")
