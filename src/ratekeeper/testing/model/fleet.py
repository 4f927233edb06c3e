"""A scenario, and the discrete-event loop that plays it on virtual time.

Events are kept in one heap ordered by (instant, sequence number); the sequence number breaks
ties in the order events were scheduled, so a run is a pure function of its :class:`Scenario`.
Each client has its own random streams (arrivals, network) seeded from the scenario's seed and
its index, so adding a client does not reshuffle what the others draw.

A client's reporter runs as the real driver does: a cycle every ``report_interval`` from a
random phase, each report either answered after its round trip or failed at the deadline (the
server still applies a report whose answer is lost: it got the report).
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.testing.model.arrivals import Arrivals
from ratekeeper.testing.model.fleet_client import CLIENT_EPOCH_NS, FleetClient, Outbound
from ratekeeper.testing.model.fleet_server import FleetServer
from ratekeeper.testing.model.network import LAN, Network

__all__ = ["Run", "Scenario", "simulate"]

_ARRIVE, _TICK, _DELIVER, _ANSWER, _FAIL = range(5)


@dataclass(frozen=True, slots=True)
class Scenario:
    """What to simulate: a fleet, its traffic, its network, one policy on every key."""

    clients: int
    #: The limit every client declares inline for every key (``"5/s"``, ``"100/s burst 200"``).
    limit: str
    #: Each client's arrivals: one process for all, or one per client.
    arrivals: Arrivals | tuple[Arrivals, ...]
    duration_s: float = 10.0
    #: Seconds between a client's reports: one for all, or one per client.
    report_interval_s: float | tuple[float, ...] = 0.1
    network: Network = LAN
    #: Keys the traffic is spread over (uniformly); each is measured on its own.
    keys: int = 1
    seed: int = 0

    def arrivals_of(self, client: int) -> Arrivals:
        a = self.arrivals
        return a if isinstance(a, Arrivals) else a[client % len(a)]

    def interval_of(self, client: int) -> float:
        r = self.report_interval_s
        return r if isinstance(r, float | int) else r[client % len(r)]


@dataclass(slots=True)
class Run:
    """What happened: every decision, in time order, and the report traffic."""

    scenario: Scenario
    #: Per key: instants (ns from the start) of the hits offered, and whether each was admitted.
    times: dict[str, list[int]] = field(default_factory=dict)
    admitted: dict[str, list[bool]] = field(default_factory=dict)
    #: Per client: reports sent (RPCs), answered, failed.
    sent: list[int] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    #: Report cycles each client ran.
    cycles: list[int] = field(default_factory=list)
    #: Events processed (a speed measure: the work the loop did).
    events: int = 0
    _digest: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)

    def digest(self) -> str:
        """A fingerprint of the whole trace: equal for equal runs."""
        return self._digest.hexdigest()

    @property
    def client_seconds(self) -> float:
        return self.scenario.clients * self.scenario.duration_s


def simulate(scenario: Scenario) -> Run:
    """Play ``scenario`` to its end and return what happened."""
    return _Loop(scenario).run()


class _Loop:
    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        self.end = int(sc.duration_s * NS_PER_SECOND)
        self.now = 0
        self.heap: list[tuple[int, int, int, int, object]] = []
        self.seq = 0
        self.server = FleetServer()
        self.key_names = [f"k{i}" for i in range(sc.keys)]
        self.clients: list[FleetClient] = []
        self.arrival_iters: list[Iterator[int]] = []
        self.net_rngs: list[random.Random] = []
        self.key_rngs: list[random.Random] = []
        self.result = Run(sc)
        n = sc.clients
        self.result.sent, self.result.answered = [0] * n, [0] * n
        self.result.failed, self.result.cycles = [0] * n, [0] * n
        for name in self.key_names:
            self.result.times[name], self.result.admitted[name] = [], []
        for i in range(n):
            interval = sc.interval_of(i)
            self.clients.append(FleetClient(f"client-{i}", sc.limit, interval))
            base = sc.seed * 1_000_003 + i * 7919
            arrivals = sc.arrivals_of(i).times(random.Random(base + 1), self.end)
            self.arrival_iters.append(arrivals)
            self.net_rngs.append(random.Random(base + 2))
            self.key_rngs.append(random.Random(base + 3))
            phase = random.Random(base + 4).random()
            self._next_arrival(i)
            self.push(int(phase * interval * NS_PER_SECOND) + 1, _TICK, i, None)

    def push(self, at: int, kind: int, client: int, payload: object) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, client, payload))

    def _next_arrival(self, i: int) -> None:
        t = next(self.arrival_iters[i], None)
        if t is not None:
            self.push(t, _ARRIVE, i, None)

    def clock(self) -> int:
        return CLIENT_EPOCH_NS + self.now

    def run(self) -> Run:
        # indexed by event kind (in the order of _ARRIVE, _TICK, ...)
        handlers: tuple[Callable[[int, object], None], ...] = (
            self.arrive,
            self.tick,
            self.deliver,
            self.answer,
            self.fail,
        )
        heap, end, pop = self.heap, self.end, heapq.heappop
        trace = self.result._digest.update
        events = 0
        while heap:
            at, _, kind, i, payload = pop(heap)
            if at >= end:
                break
            self.now = at
            events += 1
            trace(b"%d %d %d;" % (at, kind, i))
            handlers[kind](i, payload)
        self.result.events += events
        return self.result

    def answer(self, i: int, payload: object) -> None:
        assert isinstance(payload, tuple)
        self.clients[i].answered(payload[0], payload[1], self.clock())
        self.result.answered[i] += 1

    def fail(self, i: int, payload: object) -> None:
        assert isinstance(payload, Outbound)
        self.clients[i].failed(payload, self.clock())
        self.result.failed[i] += 1

    def arrive(self, i: int, payload: object = None) -> None:
        keys, now, result = self.key_names, self.now, self.result
        key = keys[0] if len(keys) == 1 else keys[self.key_rngs[i].randrange(len(keys))]
        ok = self.clients[i].decide(key, CLIENT_EPOCH_NS + now)
        result.times[key].append(now)
        result.admitted[key].append(ok)
        result._digest.update(b"+" if ok else b"-")
        t = next(self.arrival_iters[i], None)
        if t is not None:
            self.push(t, _ARRIVE, i, None)

    def tick(self, i: int, payload: object = None) -> None:
        client = self.clients[i]
        self.result.cycles[i] += 1
        now = self.now
        deadline = now + client.timeout_ns
        clock = CLIENT_EPOCH_NS + now
        outbound = client.collect(clock)
        self.push(client.due(clock) - CLIENT_EPOCH_NS, _TICK, i, None)
        if not outbound:
            return
        self.result.sent[i] += len(outbound)
        send_up, rng = self.sc.network.send_up, self.net_rngs[i]
        for out in outbound:
            delay = send_up(rng, i, now)
            if delay is None or now + delay > deadline:
                self.push(deadline, _FAIL, i, out)  # the client gives up at its deadline
            if delay is not None:  # a late report is still applied: the server got it
                self.push(now + delay, _DELIVER, i, (out, deadline))

    def deliver(self, i: int, payload: object) -> None:
        assert isinstance(payload, tuple)
        out, deadline = payload
        now = self.now
        answer: pb.ReportResponse = self.server.process(out.request, now)
        if now > deadline:
            return  # its client has already counted it failed
        back = self.sc.network.send_down(self.net_rngs[i], i, now)
        if back is None or now + back > deadline:
            self.push(deadline, _FAIL, i, out)
        else:
            self.push(now + back, _ANSWER, i, (out, answer))
