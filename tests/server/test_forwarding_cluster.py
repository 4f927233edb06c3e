"""Any member is the entry point, in a real-process cluster (``ratekeeper assigner`` and
``ratekeeper serve --join`` processes, their assignment made by the assigner): a
``ShouldRateLimit`` for a key another member owns gets the owner's answer, and ``/json`` too."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.slices import Assignment
from ratekeeper.proto.assignment import assignment_from_wire
from ratekeeper.testing.cluster import Cluster
from ratekeeper.testing.server_process import metric_samples

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

OK = rls_pb2.RateLimitResponse.OK
OVER = rls_pb2.RateLimitResponse.OVER_LIMIT
POLICY = """\
domain: fw
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 2}
"""


def owned_by(assignment: Assignment, owner: str, start: int = 0) -> str:
    """A user whose counter ``owner`` owns."""
    for n in range(start, start + 1000):
        user = f"u{n}"
        if assignment.owner_of(key_hash(canonical_bytes("fw", (("user", user),)))) == owner:
            return user
    raise AssertionError("no user found")


def ask(address: str, user: str) -> int:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value=user)
    request = rls_pb2.RateLimitRequest(
        domain="fw", descriptors=[ratelimit_pb2.RateLimitDescriptor(entries=[entry])]
    )
    with grpc.insecure_channel(address) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        code: int = stub.ShouldRateLimit(request, timeout=10).overall_code
        return code


def post_json(http_port: int, user: str) -> int:
    body = {"domain": "fw", "descriptors": [{"entries": [{"key": "user", "value": user}]}]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/json",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def hits(http_port: int, name: str = "ratekeeper_rule_total_hits_total") -> float:
    """A member's count of ``name`` for the ``fw.user`` rule (all its samples summed)."""
    return sum(
        s.value
        for s in metric_samples(http_port)
        if s.name == name and s.labels.get("domain", "fw") == "fw"
    )


def test_a_key_owned_by_another_member_gets_the_owners_answer(tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "fw.yaml").write_text(POLICY)
    with Cluster(2, log_dir=tmp_path / "logs", config=policy) as cluster:
        assignment = assignment_from_wire(cluster.status().assignment)
        entry, owner = cluster.servers
        there = owned_by(assignment, cluster.addresses[1])
        codes = [ask(cluster.addresses[0], there) for _ in range(3)]
        assert codes == [OK, OK, OVER]  # 2 a minute, counted once, by the owner
        assert hits(owner.http_port) == 3
        assert hits(entry.http_port) == 0
        # Asked directly, the owner's counter is the one that moved.
        assert ask(cluster.addresses[1], there) == OVER
        # /json on the entry is forwarded the same way.
        other = owned_by(assignment, cluster.addresses[1], start=int(there[1:]) + 1)
        assert [post_json(entry.http_port, other) for _ in range(3)] == [200, 200, 429]
        assert hits(owner.http_port) == 7
        assert hits(entry.http_port, "ratekeeper_forward_errors_total") == 0
        assert hits(owner.http_port, "ratekeeper_misdirected_keys_total") == 0
