"""Stats keys of share_threshold rules, as envoyproxy/ratelimit's config_test pins them: the
shared level keeps its wildcard pattern even under value_to_metric or detailed_metric."""

from __future__ import annotations

from typing import Any

import pytest

from ratekeeper.config import PolicyTree

LIMIT = {"unit": "hour", "requests_per_unit": 10}


def tree(*descriptors: dict[str, Any]) -> PolicyTree:
    return PolicyTree.from_mapping({"domain": "d", "descriptors": list(descriptors)})


@pytest.mark.parametrize("flag", ["value_to_metric", "detailed_metric"])
def test_a_shared_wildcard_keeps_its_pattern_in_the_stats_key(flag: str) -> None:
    shared = {"key": "files", "value": "/files/*", "share_threshold": True, "rate_limit": LIMIT}
    match = tree(shared | {flag: True}).match("d", [("files", "/files/a.txt")])
    assert match is not None
    assert match.stats_key == "d.files_/files/*"
    assert match.counter_entries == (("files", "/files/*"),)


def test_an_unshared_wildcard_with_value_to_metric_uses_the_value() -> None:
    rule = {"key": "files", "value": "/files/*", "value_to_metric": True, "rate_limit": LIMIT}
    match = tree(rule).match("d", [("files", "/files/a.txt")])
    assert match is not None
    assert match.stats_key == "d.files_/files/a.txt"


@pytest.mark.parametrize(
    ("leaf_flag", "stats_key"),
    [("value_to_metric", "d.tenant_t*.user_u1"), ("detailed_metric", "d.tenant_t*.user_u1")],
)
def test_a_shared_parent_keeps_its_pattern_below(leaf_flag: str, stats_key: str) -> None:
    child = {"key": "user", leaf_flag: True, "rate_limit": LIMIT}
    parent = {"key": "tenant", "value": "t*", "share_threshold": True, "descriptors": [child]}
    match = tree(parent).match("d", [("tenant", "t1"), ("user", "u1")])
    assert match is not None
    assert match.stats_key == stats_key
