"""The operator page's document from typed values, no HTTP."""

from __future__ import annotations

import json

from ratekeeper.backends.budgets import StorePressure
from ratekeeper.backends.store import StoreStat
from ratekeeper.core.instructions import UNBOUNDED, Instruction
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation, Slice
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import RuleCounts
from ratekeeper.server.operator_history import OperatorTap
from ratekeeper.server.operator_snapshot import (
    ClusterState,
    StoreState,
    build_snapshot,
    key_label,
)

S = NS_PER_SECOND
LIMIT = Limit(10, Unit.SECOND)
STORE = StoreState(True, (StoreStat("ratekeeper_store_keys", "Counters held.", "gauge", 3),))


def feed(tap: OperatorTap, value: str, reject_ns: int, now: int, admitted: int = 20) -> None:
    keys = [KeyCounts("rl", (("user", value),), admitted, 5)]
    answer = Instruction(reject_ns, 0.0 if reject_ns else UNBOUNDED, S, (LIMIT,))
    hot = ((123, 4 * S),)
    tap.observe(Report("web-1", keys), keys, ReportAnswer((answer,), hot=hot), now)


def test_limited_keys_rejecting_first_with_their_series_against_the_policy() -> None:
    tap = OperatorTap(bucket_ns=S, points=10)
    for second in range(4):
        feed(tap, "alice", S, second * S)
    feed(tap, "bob", 0, 0)  # never rejected: not listed
    feed(tap, "carol", S // 10, S)  # rejected once, period over by now
    doc = build_snapshot(tap, STORE, None, 4 * S)
    keys = [k["key"] for k in doc["limited"]]
    assert keys == ["rl: user=alice", "rl: user=carol"]  # neither rejecting: by hits rejected
    alice = next(k for k in doc["limited"] if k["key"] == "rl: user=alice")
    assert alice["limits"] == ["10/second"]
    assert alice["policy_per_s"] == 10.0
    assert alice["rejecting_for_s"] == 0.0
    assert alice["rejections"] == 4
    # complete buckets only (the current one is still filling), from the first with hits
    assert alice["series"]["t"] == [-4.0, -3.0, -2.0, -1.0]
    assert alice["series"]["admitted_per_s"] == [20.0] * 4
    assert alice["series"]["rejected_per_s"] == [5.0] * 4
    # the last answer (carol's, at 1 s) said 4 s left: 1 s at 4 s
    assert doc["hot_unnamed"] == [{"hash": f"{123:016x}", "rejecting_for_s": 1.0}]
    assert doc["clients"][0]["id"] == "web-1"
    assert doc["cluster"] is None
    json.dumps(doc, allow_nan=False)  # plain JSON


def test_a_key_rejecting_now_ranks_first() -> None:
    tap = OperatorTap(bucket_ns=S, points=10)
    feed(tap, "old", S, 0, admitted=100)
    feed(tap, "now", 10 * S, 2 * S, admitted=1)
    doc = build_snapshot(tap, STORE, None, 3 * S)
    assert [k["key"] for k in doc["limited"]] == ["rl: user=now", "rl: user=old"]
    assert doc["limited"][0]["rejecting_for_s"] == 9.0


def test_rules_store_pressure_and_untrusted_text_are_shown_bounded() -> None:
    tap = OperatorTap(bucket_ns=S)
    tap.sample_rules({("rl", "rl.remote_address"): RuleCounts(9, 7, 0, 2, 0)}, 0)
    pressure = StorePressure(95, 100, 4, ("domain 'rl'",), 0.9)
    doc = build_snapshot(tap, StoreState(True, (), pressure), None, S)
    (rule,) = doc["rules"]
    assert (rule["key"], rule["over_limit"], rule["within_limit"]) == ("rl.remote_address", 7, 2)
    assert doc["store"]["pressure"]["under_pressure"] is True
    assert doc["store"]["pressure"]["at_budget"] == ["domain 'rl'"]
    assert len(key_label("rl", (("k", "x" * 10_000),))) <= 201


def test_a_cluster_member_shows_members_slices_and_its_load() -> None:
    half = HASH_SPACE // 2
    held = Assignment(Generation(1, 3), (0, half), ("a:1", "b:2"))
    cluster = ClusterState("a:1", "running", "b:2", held, ((Slice(0, half), 42.0),))
    doc = build_snapshot(OperatorTap(), STORE, cluster, S)["cluster"]
    assert doc["generation"] == [1, 3]
    assert doc["members"] == [
        {"address": "a:1", "slices": 1, "share": 0.5},
        {"address": "b:2", "slices": 1, "share": 0.5},
    ]
    assert doc["load"][0]["per_s"] == 42.0
    assert doc["load"][0]["mine"] is True
