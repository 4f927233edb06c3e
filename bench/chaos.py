"""``python -m bench.chaos``: the rebalancer under many rounds of membership churn and Zipf drift.

In the style of Dicer's algorithm chaos test, but measured against the truth rather than against
what the algorithm was told. A world of keys with random 64-bit hashes carries Zipf-distributed
load. Each round a server may leave (its slices must move) and one may join (it must be filled),
some of the hottest keys trade places with random others (the load drifts), the servers report
what they saw — the load of each slice they own, plus their hottest keys one by one, as Dicer's
slicelets report top keys — and the rebalancer produces the next assignment. The round is then
scored on the *true* key loads:

- **imbalance**: the most loaded server's load over the mean;
- **churn**: the fraction of the total load whose owner changed (a departed server's load
  included, since its counters move too), and apart from it the **chosen** churn, moved between
  servers that were there before and after, which is what the move budget caps;
- **bound**: the best imbalance any assignment could reach, ``max(1, hottest key / mean)``,
  because a rate-limit slice is never replicated, so a key hotter than the mean cannot be helped.

The first rounds start from an even split that ignores load, so they are reported apart
(``--warmup``) and left out of the quantiles.
"""

from __future__ import annotations

import argparse
import bisect
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ratekeeper.core.assignment import moves, pieces
from ratekeeper.core.rebalance import RebalanceSettings, rebalance
from ratekeeper.core.rebalance_load import LoadMap
from ratekeeper.core.slices import Assignment, Generation, Slice, even_split

__all__ = ["ChaosResult", "ChaosSpec", "KeyWorld", "main", "quantile", "run_chaos", "table"]


@dataclass(frozen=True, slots=True)
class ChaosSpec:
    """One chaos run."""

    #: Scored rounds, after the warm-up.
    rounds: int = 1000
    #: Rounds from the even split before scoring starts.
    warmup: int = 20
    #: Servers at the start; membership wanders around this number.
    servers: int = 64
    #: Distinct keys.
    keys: int = 1_000_000
    #: Zipf exponent of the key loads: the key of rank r carries load proportional to r**-zipf.
    zipf: float = 0.8
    #: Keys among the hottest that may trade places with a random key each round.
    hot_keys: int = 1000
    #: Chance per round that each of those hot keys does trade places.
    drift: float = 0.05
    #: Chance per round that a server leaves, and, independently, that a new one joins.
    membership: float = 0.1
    #: A server reports a key alone when it carries this fraction of the mean server load.
    top_key_fraction: float = 0.01
    #: Random seed: the same spec always gives the same figures.
    seed: int = 1
    #: The rebalancer's settings.
    settings: RebalanceSettings = field(default_factory=RebalanceSettings)


class KeyWorld:
    """The keys, their hashes and their current loads; a Fenwick tree makes range sums cheap."""

    def __init__(self, spec: ChaosSpec, rng: random.Random) -> None:
        self.hashes = sorted({rng.getrandbits(64) for _ in range(spec.keys)})
        n = len(self.hashes)
        #: ``key_of_rank[r]`` is the position (in hash order) of the key of Zipf rank ``r + 1``.
        self.key_of_rank = list(range(n))
        rng.shuffle(self.key_of_rank)
        self.weight = [0.0] * n
        for rank, key in enumerate(self.key_of_rank):
            self.weight[key] = (rank + 1) ** -spec.zipf
        self.total = sum(self.weight)
        self.tree = [0.0] * (n + 1)
        for i, w in enumerate(self.weight):
            self._add(i, w)

    def _add(self, i: int, delta: float) -> None:
        i += 1
        while i < len(self.tree):
            self.tree[i] += delta
            i += i & -i

    def _prefix(self, j: int) -> float:
        total = 0.0
        while j > 0:
            total += self.tree[j]
            j -= j & -j
        return total

    def load_in(self, piece: Slice) -> float:
        """The true load of the keys in ``piece``."""
        i = bisect.bisect_left(self.hashes, piece.low)
        j = bisect.bisect_left(self.hashes, piece.high)
        return max(0.0, self._prefix(j) - self._prefix(i)) if j > i else 0.0

    def swap_ranks(self, a: int, b: int) -> None:
        """Let the keys of ranks ``a`` and ``b`` trade loads."""
        ka, kb = self.key_of_rank[a], self.key_of_rank[b]
        wa, wb = self.weight[ka], self.weight[kb]
        self._add(ka, wb - wa)
        self._add(kb, wa - wb)
        self.weight[ka], self.weight[kb] = wb, wa
        self.key_of_rank[a], self.key_of_rank[b] = kb, ka

    def hottest(self, count: int) -> list[tuple[int, float]]:
        """The ``count`` hottest keys as ``(hash, load)``."""
        return [(self.hashes[k], self.weight[k]) for k in self.key_of_rank[:count]]


def reports(world: KeyWorld, assignment: Assignment, spec: ChaosSpec) -> LoadMap:
    """What the servers report: per-slice loads, with their hottest keys listed alone."""
    mean = world.total / len(assignment.servers)
    alone: dict[int, list[tuple[int, float]]] = {}
    for key_hash, load in world.hottest(min(len(world.hashes), 4 * spec.hot_keys)):
        if load >= spec.top_key_fraction * mean:
            i = bisect.bisect_right(assignment.starts, key_hash) - 1
            alone.setdefault(i, []).append((key_hash, load))
    entries: list[tuple[Slice, float]] = []
    for i, (piece, _) in enumerate(pieces(assignment)):
        listed = alone.get(i, [])
        rest = world.load_in(piece) - sum(load for _, load in listed)
        entries.append((piece, max(0.0, rest)))
        entries += [(Slice(h, h + 1), load) for h, load in listed]
    return LoadMap.of(entries)


@dataclass(frozen=True, slots=True)
class ChaosResult:
    """Per-round figures of one run, scored rounds only."""

    imbalance: list[float]
    churn: list[float]
    chosen: list[float]
    bound: list[float]
    slices: list[int]
    #: Wall time of each call to the rebalancer.
    compute: list[float]
    seconds: float


def true_loads(world: KeyWorld, assignment: Assignment, servers: Sequence[str]) -> list[float]:
    loads = dict.fromkeys(servers, 0.0)
    for piece, owner in pieces(assignment):
        loads[owner] += world.load_in(piece)
    return list(loads.values())


def run_chaos(spec: ChaosSpec) -> ChaosResult:
    """Run ``spec`` and return its per-round figures."""
    rng = random.Random(spec.seed)
    world = KeyWorld(spec, rng)
    names = [f"s{i:03d}" for i in range(spec.servers)]
    joined = spec.servers
    current = even_split(names, Generation(1, 0))
    healthy = list(names)
    result = ChaosResult([], [], [], [], [], [], 0.0)
    started = time.perf_counter()
    for round_ in range(spec.warmup + spec.rounds):
        if rng.random() < spec.membership and len(healthy) > 1:
            healthy.remove(rng.choice(healthy))
        if rng.random() < spec.membership:
            healthy.append(f"s{joined:03d}")
            joined += 1
        for rank in range(min(spec.hot_keys, len(world.hashes))):
            if rng.random() < spec.drift:
                world.swap_ranks(rank, rng.randrange(len(world.hashes)))
        seen = reports(world, current, spec)
        began = time.perf_counter()
        nxt = rebalance(current, healthy, seen, spec.settings).assignment
        took = time.perf_counter() - began
        if round_ >= spec.warmup:
            loads = true_loads(world, nxt, healthy)
            mean = world.total / len(healthy)
            found = moves(current, nxt)
            stayed = current.servers & nxt.servers
            moved = sum(world.load_in(m.slice) for m in found)
            chosen = sum(world.load_in(m.slice) for m in found if {m.source, m.target} <= stayed)
            result.imbalance.append(max(loads) / mean)
            result.churn.append(moved / world.total)
            result.chosen.append(chosen / world.total)
            result.bound.append(max(1.0, world.hottest(1)[0][1] / mean))
            result.slices.append(len(nxt.starts))
            result.compute.append(took)
        current = nxt
    return ChaosResult(
        result.imbalance,
        result.churn,
        result.chosen,
        result.bound,
        result.slices,
        result.compute,
        time.perf_counter() - started,
    )


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank, as Dicer's chaos test reads it)."""
    ordered = sorted(values)
    return ordered[int((len(ordered) - 1) * q)]


def table(spec: ChaosSpec, result: ChaosResult) -> str:
    """The run as a Markdown table."""
    head = (
        "| rounds | servers | keys | zipf | imbalance p50 / p99 / max | bound max "
        "| churn p50 / p99 / max | chosen churn max | slices p50 | rebalance ms p50 / max "
        "| seconds |"
    )
    imb, churn = result.imbalance, result.churn
    row = (
        f"| {spec.rounds} | {spec.servers} | {spec.keys:,} | {spec.zipf} "
        f"| {quantile(imb, 0.5):.3f} / {quantile(imb, 0.99):.3f} / {max(imb):.3f} "
        f"| {max(result.bound):.3f} "
        f"| {quantile(churn, 0.5):.1%} / {quantile(churn, 0.99):.1%} / {max(churn):.1%} "
        f"| {max(result.chosen):.1%} | {int(quantile(result.slices, 0.5))} "
        f"| {quantile(result.compute, 0.5) * 1e3:.0f} / {max(result.compute) * 1e3:.0f} "
        f"| {result.seconds:.0f} |"
    )
    return "\n".join([head, "|---|---|---|---|---|---|---|---|---|---|---|", row])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    defaults = ChaosSpec()
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--warmup", type=int, default=defaults.warmup)
    parser.add_argument("--servers", type=int, default=defaults.servers)
    parser.add_argument("--keys", type=int, default=defaults.keys)
    parser.add_argument("--zipf", type=float, default=defaults.zipf)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--tolerance", type=float, default=defaults.settings.tolerance)
    args = parser.parse_args(argv)
    spec = ChaosSpec(
        rounds=args.rounds,
        warmup=args.warmup,
        servers=args.servers,
        keys=args.keys,
        zipf=args.zipf,
        seed=args.seed,
        settings=RebalanceSettings(tolerance=args.tolerance),
    )
    print(table(spec, run_chaos(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
