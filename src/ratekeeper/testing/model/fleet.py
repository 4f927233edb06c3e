"""A scenario, and the discrete-event loop that plays it on virtual time.

Events are kept in one heap ordered by (instant, sequence number); the sequence number breaks
ties in the order events were scheduled, so a run is a pure function of its :class:`Scenario`.
Each client has its own random streams (arrivals, network) seeded from the scenario's seed and
its index, so adding a client does not reshuffle what the others draw.

A client's reporter runs as the real driver does: a cycle every ``report_interval`` from a
random phase, each report either answered after its round trip or failed at the deadline (the
server still applies a report whose answer is lost: it got the report).

A scenario may restart the server (:class:`Restart`): it stops at ``at_s``, every report that
reaches it while it is down is refused (its client hears the refusal one down-link delay
later, as a refused connection), and after ``down_s`` a new server takes over with empty
memory, as a restarted in-memory ``ratekeeper serve`` does.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.testing.model.arrivals import Arrivals
from ratekeeper.testing.model.fleet_client import CLIENT_EPOCH_NS, FleetClient, Outbound
from ratekeeper.testing.model.fleet_server import FleetServer
from ratekeeper.testing.model.network import LAN, Network

__all__ = ["Restart", "Run", "Scenario", "simulate"]

_ARRIVE, _TICK, _DELIVER, _ANSWER, _FAIL, _RESTART = range(6)
#: Trace entries buffered before they are hashed (per event: its instant, its kind and client,
#: and an arrival's verdict).
_TRACE_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class Restart:
    """The server stops at ``at_s`` and a new one, with empty memory, serves from
    ``at_s + down_s`` (seconds of virtual time)."""

    at_s: float
    down_s: float

    def down(self, now: int) -> bool:
        """Whether the server is down at ``now`` (ns)."""
        start = int(self.at_s * NS_PER_SECOND)
        return start <= now < start + int(self.down_s * NS_PER_SECOND)


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
    #: Every client runs with ``LimiterOptions(dealt_onset=True)`` (docs/client.md).
    dealt_onset: bool = False
    #: The server restarts, losing its memory (``None``: it never does).
    restart: Restart | None = None

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
        """A fingerprint of the whole trace: equal for equal runs (on one machine: the trace is
        hashed in its native byte order)."""
        return self._digest.hexdigest()

    def trace(self, events: array[int]) -> None:
        """Hash ``events`` (a chunk of the loop's trace) into the digest."""
        self._digest.update(events.tobytes())

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
        self.heap: list[tuple[int, int, int, int, object]] = []
        #: Breaks ties between events at one instant: the order they were scheduled in.
        self.seq = itertools.count(1)
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
            self.clients.append(FleetClient(f"client-{i}", sc.limit, interval, sc.dealt_onset))
            base = sc.seed * 1_000_003 + i * 7919
            arrivals = sc.arrivals_of(i).times(random.Random(base + 1), self.end)
            self.arrival_iters.append(arrivals)
            self.net_rngs.append(random.Random(base + 2))
            self.key_rngs.append(random.Random(base + 3))
            phase = random.Random(base + 4).random()
            self._next_arrival(i)
            self.push(int(phase * interval * NS_PER_SECOND) + 1, _TICK, i, None)
        restart = sc.restart
        if restart is not None:
            back = int(restart.at_s * NS_PER_SECOND) + int(restart.down_s * NS_PER_SECOND)
            self.push(back, _RESTART, 0, None)

    def push(self, at: int, kind: int, client: int, payload: object) -> None:
        heapq.heappush(self.heap, (at, next(self.seq), kind, client, payload))

    def _next_arrival(self, i: int) -> None:
        t = next(self.arrival_iters[i], None)
        if t is not None:
            self.push(t, _ARRIVE, i, None)

    def run(self) -> Run:
        # every kind but the rare failure is handled inline, over locals: a sweep plays
        # millions of events
        heap, end, pop, push, seq = self.heap, self.end, heapq.heappop, heapq.heappush, self.seq
        result, clients, net_rngs = self.result, self.clients, self.net_rngs
        arrival_iters, key_names, key_rngs = self.arrival_iters, self.key_names, self.key_rngs
        network, server, restart = self.sc.network, self.server, self.sc.restart
        # the trace is hashed a chunk at a time: formatting and hashing each event cost a tenth
        # of the loop
        log, cycles, sent = array("q"), result.cycles, result.sent
        note = log.append
        times, admitted, answered = result.times, result.admitted, result.answered
        one_key = key_names[0] if len(key_names) == 1 else ""  # else each hit draws its key
        events = 0
        while heap:
            at, _, kind, i, payload = pop(heap)
            if at >= end:
                break
            events += 1
            note(at)
            note(kind | i << 3)
            if kind == _ARRIVE:  # a hit: the client decides it; schedule its next
                key = one_key or key_names[key_rngs[i].randrange(len(key_names))]
                ok = clients[i].decide(key, CLIENT_EPOCH_NS + at)
                times[key].append(at)
                admitted[key].append(ok)
                note(ok)
                t = next(arrival_iters[i], None)
                if t is not None:
                    push(heap, (t, next(seq), _ARRIVE, i, None))
            elif kind == _TICK:  # a report cycle: send each report, schedule the next cycle
                if len(log) >= _TRACE_CHUNK:
                    result.trace(log)
                    del log[:]
                client = clients[i]
                cycles[i] += 1
                clock = CLIENT_EPOCH_NS + at
                outbound = client.collect(clock)
                push(heap, (client.due(clock) - CLIENT_EPOCH_NS, next(seq), _TICK, i, None))
                sent[i] += len(outbound)
                for out in outbound:
                    deadline = at + round(out.timeout * NS_PER_SECOND)  # the report's own
                    delay = network.send_up(net_rngs[i], i, at)
                    if delay is None or at + delay > deadline:  # it gives up at its deadline
                        push(heap, (deadline, next(seq), _FAIL, i, out))
                    if delay is not None:  # a late report is still applied: the server got it
                        push(heap, (at + delay, next(seq), _DELIVER, i, (out, deadline)))
            elif kind == _DELIVER:  # a report reaches the server: answer it
                assert isinstance(payload, tuple)
                out, deadline = payload
                if restart is not None and restart.down(at):
                    if at <= deadline:  # else its client has already counted it failed
                        self.refuse(i, out, at, deadline)
                    continue
                answer: pb.ReportResponse = server.process(out.request, at)
                if at > deadline:
                    continue  # its client has already counted it failed
                back = network.send_down(net_rngs[i], i, at)
                if back is None or at + back > deadline:
                    push(heap, (deadline, next(seq), _FAIL, i, out))
                else:
                    push(heap, (at + back, next(seq), _ANSWER, i, (out, answer)))
            elif kind == _ANSWER:  # an answer reaches its client
                assert isinstance(payload, tuple)
                clients[i].answered(payload[0], payload[1], CLIENT_EPOCH_NS + at)
                answered[i] += 1
            elif kind == _RESTART:  # a new server, with none of the old one's memory
                server = self.server = FleetServer()
            else:
                self.fail(i, payload, at)
        result.trace(log)
        result.events += events
        return result

    def refuse(self, i: int, out: Outbound, at: int, deadline: int) -> None:
        """A report reached a stopped server: its client hears the refusal on the way back
        (or gives up at its deadline, whichever comes first)."""
        back = self.sc.network.send_down(self.net_rngs[i], i, at)
        when = deadline if back is None else min(at + back, deadline)
        self.push(when, _FAIL, i, out)

    def fail(self, i: int, payload: object, at: int) -> None:
        assert isinstance(payload, Outbound)
        self.clients[i].failed(payload, CLIENT_EPOCH_NS + at)
        self.result.failed[i] += 1
