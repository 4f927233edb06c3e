"""Client routing cost: the owner of a key's hash, by the assignment the client holds.

Target (issue 12): a lookup costs ≤ 200 ns once the key is known. Measured in one process and one
run, interleaved round by round; each figure is the median over rounds of ns per lookup, loop
included (``for h in hashes: f(h)``, 10k distinct random hashes, so cache misses are real), and
the best round (the least disturbed by other load on a shared machine):

* ``empty loop``: ``f`` returns its argument, the floor the other rows stand on;
* ``Assignment.owner_of``: the core's checked bisect (the reference the table must agree with);
* ``RoutingTable.owner_of``: the table's bisect, for a key not routed since the last adoption;
* ``route() cached``: what the reporter pays per key and cycle once a key is routed;
* ``route() after adoption``: every key re-routed (the table adopted a new generation).

Each for assignments of 1, 3, 64 and 1024 slices (even splits over 3 servers).

    python -m bench.routing_bench            # 7 rounds
    python -m bench.routing_bench --quick    # 3 rounds
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ratekeeper.client.routing import RoutingTable, route
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation

SLICES = (1, 3, 64, 1024)
KEYS = 10_000
SERVERS = ("10.0.0.1:8081", "10.0.0.2:8081", "10.0.0.3:8081")


@dataclass(slots=True)
class State:
    """A key state's routing fields (the real one has more slots; these are the ones read)."""

    key_hash: int
    owner: str = ""
    routed: int = -1


def assignment(slices: int, number: int = 1) -> Assignment:
    """``slices`` equal slices dealt round-robin over :data:`SERVERS`."""
    starts = tuple((i * HASH_SPACE) // slices for i in range(slices))
    owners = tuple(SERVERS[(i + number) % len(SERVERS)] for i in range(slices))
    return Assignment(Generation(1, number), starts, owners)


def per_call_ns(fn: Callable[[int], object], hashes: Sequence[int], repeat: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(repeat):
        for h in hashes:
            fn(h)
    return (time.perf_counter_ns() - t0) / (repeat * len(hashes))


def route_ns(table: RoutingTable, states: Sequence[State], repeat: int, adopt: bool) -> float:
    """ns per ``route()``; with ``adopt``, the table swaps assignments before each pass."""
    layouts = [table.assignment, assignment(len(table.assignment.starts), 2)]
    elapsed = 0
    for i in range(repeat):
        if adopt:
            table = table.replace(layouts[i % 2])
        t0 = time.perf_counter_ns()
        for st in states:
            route(table, st)
        elapsed += time.perf_counter_ns() - t0
    return elapsed / (repeat * len(states))


def cases(slices: int, repeat: int) -> dict[str, Callable[[], float]]:
    rng = random.Random(slices)
    hashes = [rng.getrandbits(64) for _ in range(KEYS)]
    held = assignment(slices)
    table = RoutingTable(held)
    states = [State(h) for h in hashes]
    route_ns(table, states, 1, adopt=False)  # every state routed once: the cached case
    moving = RoutingTable(held)
    moving_states = [State(h) for h in hashes]
    return {
        f"{slices} slices: empty loop": lambda: per_call_ns(lambda h: h, hashes, repeat),
        f"{slices} slices: Assignment.owner_of": lambda: per_call_ns(held.owner_of, hashes, repeat),
        f"{slices} slices: RoutingTable.owner_of": lambda: per_call_ns(
            table.owner_of, hashes, repeat
        ),
        f"{slices} slices: route() cached": lambda: route_ns(table, states, repeat, adopt=False),
        f"{slices} slices: route() after adoption": lambda: route_ns(
            moving, moving_states, repeat, adopt=True
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20, help="passes over the keys per round")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 passes")
    args = parser.parse_args(argv)
    rounds, repeat = (3, 5) if args.quick else (args.rounds, args.repeat)
    table: dict[str, Callable[[], float]] = {}
    for slices in SLICES:
        table.update(cases(slices, repeat))
    samples: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(rounds):
        for name, run in table.items():
            samples[name].append(run())
    print(f"{rounds} interleaved rounds, {repeat} passes over {KEYS:,} keys; medians over rounds")
    print()
    print("| case | ns/lookup, loop included (median) | best round |")
    print("|---|---:|---:|")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
