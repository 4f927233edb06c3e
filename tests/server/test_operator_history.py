"""The operator page's memory: limited keys and their buckets, clients, RLS rules; all bounded."""

from __future__ import annotations

from ratekeeper.core.instructions import UNBOUNDED, Instruction
from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.limits import NS_PER_SECOND, Limit, Unit
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer
from ratekeeper.protocol.stats import RuleCounts
from ratekeeper.server.operator_history import OperatorTap, Series

S = NS_PER_SECOND
LIMIT = Limit(5, Unit.SECOND)
REJECT = Instruction(S // 2, 0.0, S, (LIMIT,))
ADMIT = Instruction(0, UNBOUNDED, S, (LIMIT,))


def key(value: str, admitted: int = 1, rejected: int = 0, key_id: int = 0) -> KeyCounts:
    return KeyCounts("rl", (("user", value),), admitted, rejected, key_id=key_id)


def observe(
    tap: OperatorTap, client: str, keys: list[KeyCounts], answers: list[Instruction], now: int
) -> None:
    tap.observe(Report(client, keys), list(keys), ReportAnswer(tuple(answers)), now)


def test_a_series_sums_per_bucket_and_keeps_only_its_window() -> None:
    series = Series(2 * S, 3)
    series.add(0, 1, 10)
    series.add(S, 2, 20)  # same bucket
    series.add(2 * S, 4)
    assert series.window(3 * S) == ((-2 * S, 0, 0), (0, 3, 30), (2 * S, 4, 0))
    series.add(8 * S, 1)  # buckets 0 and 1 fall out of the window
    assert series.window(8 * S) == ((4 * S, 0, 0), (6 * S, 0, 0), (8 * S, 1, 0))
    assert series.totals(8 * S) == (1, 0)
    assert len(series._buckets) <= 3


def test_a_key_is_tracked_from_its_first_rejection_and_counted_from_every_client() -> None:
    tap = OperatorTap()
    observe(tap, "a", [key("alice", 3)], [ADMIT], 0)
    assert not tap.keys  # admitted: not limited
    observe(tap, "a", [key("alice", 4, 2)], [REJECT], S)
    observe(tap, "b", [key("alice", 5, 1)], [ADMIT], S)  # another client, same key
    (limited,) = tap.keys.values()
    assert limited.entries == (("user", "alice"),)
    assert limited.limits == (LIMIT,)
    assert limited.policy_per_s == 5.0
    assert limited.key_hash == key_hash(canonical_bytes("rl", (("user", "alice"),)))
    assert limited.series.totals(S) == (9, 3)
    assert limited.reject_until_ns == S + S // 2
    assert [c.client_id for c in tap.clients.values()] == ["a", "b"]
    assert tap.clients["a"].admitted == 7
    assert tap.clients["a"].rejecting == 1


def test_an_interned_key_is_named_by_the_report_that_interned_it() -> None:
    tap = OperatorTap()
    observe(tap, "a", [key("bob", 1, key_id=7)], [ADMIT], 0)
    # later reports carry the id and counts only; the answer rejects it
    report = Report("a", (), known_ids=(9, 7), known_admitted=(1, 6), known_rejected=(0, 2))
    tap.observe(report, [], ReportAnswer((), changed=(1,), changed_instructions=(REJECT,)), S)
    (limited,) = tap.keys.values()
    assert limited.entries == (("user", "bob"),)
    assert limited.series.totals(S) == (6, 2)
    # and from then on its known counts are summed even when the answer leaves it out
    report = Report("a", (), known_ids=(7,), known_admitted=(3,), known_rejected=(4,))
    tap.observe(report, [], ReportAnswer(()), 2 * S)
    assert limited.series.totals(2 * S) == (9, 6)


def test_keys_clients_and_names_are_bounded() -> None:
    tap = OperatorTap(max_keys=3, max_clients=2, max_names=4)
    for i in range(10):
        observe(tap, f"c{i}", [key(f"k{i}", key_id=i + 1)], [REJECT], i * S)
    assert [k.entries[0][1] for k in tap.keys.values()] == ["k7", "k8", "k9"]
    assert list(tap.clients) == ["c8", "c9"]
    assert len(tap._names) == 4
    assert set(tap._watch) <= set(tap.clients)


def test_rules_are_kept_once_over_their_limit_with_their_growth_per_bucket() -> None:
    tap = OperatorTap(bucket_ns=S)
    within, over = RuleCounts(within_limit=4), RuleCounts(within_limit=2, over_limit=1)
    rules = {("rl", "rl.a"): within, ("rl", "rl.b"): over}
    tap.sample_rules(rules, 0)
    assert list(tap.rules) == [("rl", "rl.b")]
    over.over_limit, over.within_limit = 6, 3
    tap.sample_rules(rules, S)
    seen = tap.rules["rl", "rl.b"]
    assert seen.series.window(S)[-2:] == ((0, 2, 1), (S, 1, 5))
    assert seen.last_over_ns == S


def test_a_client_watches_at_most_max_keys_ids_whatever_it_churns() -> None:
    tap = OperatorTap(max_keys=4)
    for round_ in range(3):  # 50 interned keys, every one rejected in every report
        keys = [key(f"k{i}", key_id=i + 1) for i in range(50)]
        observe(tap, "a", keys, [REJECT] * 50, round_ * S)
    assert len(tap.keys) == 4
    assert len(tap._watch["a"]) <= 4
