"""``ratekeeper serve --join`` as real processes on loopback (``testing.cluster.Cluster``):
scaling a loaded cluster from two servers to four rebalances in one assignment round."""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from ratekeeper.backends.store import Counter
from ratekeeper.core.assignment import pieces, width
from ratekeeper.core.assignment_diff import apply_update
from ratekeeper.core.limits import Limit, Unit
from ratekeeper.core.slices import HASH_SPACE, Assignment
from ratekeeper.proto.assignment import assignment_from_wire, generation_to_wire, update_from_wire
from ratekeeper.proto.cluster import AssignerCalls
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import report_call
from ratekeeper.testing.cluster import Cluster

CONFIG = """
domain: api
descriptors:
  - key: user
    rate_limit: {unit: second, requests_per_unit: 1000000}
"""

#: Every member's load averaged over two seconds (the default five would do too; shorter
#: windows show each client's once-a-cycle report as a spike).
MEMBER = ("--load-window", "2")
#: Clients sending the traffic, each reporting every key once a cycle, out of phase.
CLIENTS = 3
#: Keys spread over the whole hash space, each reported every cycle with the same hits.
KEYS = [("user", f"u{i}") for i in range(2000)]
LIMIT = Limit(1_000_000, Unit.SECOND)
HASHES = [Counter("api", (k,), LIMIT).key_hash for k in KEYS]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "api.yaml").write_text(CONFIG)
    return tmp_path


def status(address: str) -> cluster_pb2.StatusResponse:
    with grpc.insecure_channel(address) as channel:
        return AssignerCalls(channel).status(cluster_pb2.StatusRequest(), timeout=2)


def held(address: str) -> Assignment | None:
    answer = status(address)
    return assignment_from_wire(answer.assignment) if answer.HasField("assignment") else None


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def shares(assignment: Assignment) -> dict[str, float]:
    """Each owner's fraction of the keys of :data:`KEYS` (the load, as every key is equal)."""
    owners = Tally(assignment.owner_of(h) for h in HASHES)
    return {server: owners[server] / len(HASHES) for server in assignment.servers}


def width_shares(assignment: Assignment) -> dict[str, float]:
    out: dict[str, float] = {}
    for piece, owner in pieces(assignment):
        out[owner] = out.get(owner, 0.0) + width(piece) / HASH_SPACE
    return out


class Traffic(threading.Thread):
    """A client in the test, as a clerk routes: every key with one hit per cycle, one report per
    owner, routed by the assignment it holds and adopting any newer one a report answer brings.
    """

    def __init__(self, assignment: Assignment, name: str, phase_s: float) -> None:
        super().__init__(daemon=True)
        self.assignment = assignment
        self._name = name
        self._phase_s = phase_s
        self.adopted = 0
        self.errors: list[str] = []
        self._halt = threading.Event()
        self._channels: dict[str, grpc.Channel] = {}

    def run(self) -> None:
        self._halt.wait(self._phase_s)
        while not self._halt.is_set():
            try:
                self.cycle()
            except grpc.RpcError as exc:  # noted, and failed in the test's main thread
                self.errors.append(str(exc))
            self._halt.wait(0.05)
        for channel in self._channels.values():
            channel.close()

    def cycle(self) -> None:
        held = self.assignment
        by_owner: dict[str, list[pb.KeyReport]] = {}
        for (key, value), key_hash in zip(KEYS, HASHES, strict=True):
            entry = pb.KeyReport(domain="api", entries=[pb.Entry(key=key, value=value)], admitted=1)
            by_owner.setdefault(held.owner_of(key_hash), []).append(entry)
        for owner, keys in by_owner.items():
            channel = self._channels.get(owner)
            if channel is None:
                channel = self._channels[owner] = grpc.insecure_channel(owner)
            request = pb.ReportRequest(
                client_id=self._name,
                interval_ns=100_000_000,
                keys=keys,
                generation=generation_to_wire(held.generation),
            )
            answer = report_call(channel)(request, timeout=5)
            update = update_from_wire(answer.assignment)
            if update is not None and self.assignment is held:
                self.assignment = apply_update(held, update)
                self.adopted += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def test_scaling_from_two_to_four_servers_rebalances_in_one_assignment_round(
    config: Path, tmp_path: Path
) -> None:
    timings = {"heartbeat_interval": 0.1, "unhealthy_after": 1.5, "min_interval": 0.5}
    # load rounds far apart: every assignment in the test is one a membership change asked for
    with Cluster(2, log_dir=tmp_path, config=config, load_interval=600.0, server_flags=MEMBER,
                 **timings) as cluster:  # fmt: skip
        before = held(cluster.assigner)
        assert before is not None
        # load for the assigner to balance on: every key, evenly, from clients out of phase
        clients = [Traffic(before, f"client-{i}", i * 0.03) for i in range(CLIENTS)]
        for traffic in clients:
            traffic.start()
        try:
            time.sleep(2.0)
            seen: list[Assignment] = [before]
            joined = time.monotonic()
            cluster.add_server(wait=False)
            cluster.add_server(wait=False)
            four = set(cluster.addresses)

            def all_four() -> bool:
                a = held(cluster.assigner)
                if a is not None and a.generation != seen[-1].generation:
                    seen.append(a)
                return a is not None and a.servers == four

            wait_for(all_four, 60, "four servers in the assignment")
            took = time.monotonic() - joined
            time.sleep(1.5)  # many heartbeats with load: no further round is needed
            after = held(cluster.assigner)
            answer = cluster.status()
        finally:
            for traffic in clients:
                traffic.stop()
    assert not [e for traffic in clients for e in traffic.errors]
    assert after is not None
    first_with_four = next(a for a in seen if a.servers == four)
    for assignment in seen:  # each membership change took effect, balanced, in one round
        load = shares(assignment)
        mean = 1 / len(load)
        assert max(load.values()) / mean <= 1.15, (assignment.generation, load)
        assert min(load.values()) / mean >= 0.85, (assignment.generation, load)
    assert after.generation == first_with_four.generation, "a second round followed"
    for traffic in clients:  # each learnt the assignments from report answers alone
        assert traffic.assignment.generation == after.generation
    assert {m.address for m in answer.members} == four
    assert all(m.state == cluster_pb2.RUNNING for m in answer.members)
    # the members' heartbeats carry the load they measured, and it is balanced too
    assert 0 < answer.imbalance <= 1.15, [(m.address, m.load) for m in answer.members]
    print(  # the measured numbers, for the report
        f"\nrounds {[(a.generation.number, len(a.servers)) for a in seen]}; "
        f"key shares with four {shares(first_with_four)}; assigner imbalance "
        f"{answer.imbalance:.3f}; four in the assignment {took:.2f}s after the two were started; "
        f"each client adopted {[t.adopted for t in clients]} assignments from report answers"
    )
