"""The simulated network between clients and the server: per-direction delay, loss, reordering.

Delays are drawn per message from a :class:`Delay` distribution. Reordering is bounded by
construction: a message is delivered after its drawn delay, so two messages can swap only if
they were sent less than the distribution's spread apart (``Delay.high - Delay.low``). A
partition cuts one client off (both directions) for a time window.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ratekeeper.core.limits import NS_PER_SECOND

__all__ = ["CLOUD", "LAN", "Delay", "Network", "Partition"]

_MS = NS_PER_SECOND // 1000


@dataclass(frozen=True, slots=True)
class Delay:
    """A one-way delay: ``low`` plus a capped exponential tail of mean ``tail`` (ns)."""

    low: int = 1 * _MS
    tail: int = 0
    #: The longest delay ever drawn (ns): the reordering bound is ``high - low``.
    high: int = 0

    #: The longest tail drawn (derived: ``high - low``, or ten means if ``high`` is unset).
    cap: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cap = max(self.high - self.low, 0) if self.high else 10 * self.tail
        object.__setattr__(self, "cap", cap)

    def draw(self, rng: random.Random) -> int:
        tail = self.tail
        if tail <= 0:
            return self.low
        extra = int(-math.log(1.0 - rng.random()) * tail)
        return self.low + (extra if extra < self.cap else self.cap)


@dataclass(frozen=True, slots=True)
class Partition:
    """Client ``client`` can neither send nor receive during ``[start, end)`` (ns, virtual)."""

    client: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Network:
    """Both directions of every client's link to the server."""

    up: Delay = Delay()
    down: Delay = Delay()
    #: Probability that a report (``loss_up``) or its answer (``loss_down``) is lost.
    loss_up: float = 0.0
    loss_down: float = 0.0
    partitions: tuple[Partition, ...] = field(default=())

    def cut(self, client: int, now: int) -> bool:
        """Whether ``client`` is partitioned away at ``now``."""
        return any(p.client == client and p.start <= now < p.end for p in self.partitions)

    def send_up(self, rng: random.Random, client: int, now: int) -> int | None:
        """Delay of a report sent at ``now``; ``None`` if it is lost."""
        if self.partitions and self.cut(client, now):
            return None
        if self.loss_up and rng.random() < self.loss_up:
            return None
        return self.up.draw(rng)

    def send_down(self, rng: random.Random, client: int, now: int) -> int | None:
        """Delay of an answer sent at ``now``; ``None`` if it is lost."""
        if self.partitions and self.cut(client, now):
            return None
        if self.loss_down and rng.random() < self.loss_down:
            return None
        return self.down.draw(rng)


#: A datacentre link: 0.5 ms each way plus a 0.5 ms mean tail capped at 5 ms.
LAN = Network(Delay(_MS // 2, _MS // 2, 5 * _MS), Delay(_MS // 2, _MS // 2, 5 * _MS))
#: A cloud region: 2 ms plus a 3 ms mean tail capped at 30 ms, 0.1% loss each way.
CLOUD = Network(Delay(2 * _MS, 3 * _MS, 30 * _MS), Delay(2 * _MS, 3 * _MS, 30 * _MS), 0.001, 0.001)
