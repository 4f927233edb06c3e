"""A bucket id's map names a descriptor: its pairs in the order the config nests their keys."""

from __future__ import annotations

from ratekeeper.config import PolicyTree
from ratekeeper.protocol.rlqs_match import match_bucket

POLICY = PolicyTree.from_mapping(
    {
        "domain": "edge",
        "descriptors": [
            {
                "key": "route",
                "value": "api",
                "descriptors": [
                    {"key": "user", "rate_limit": {"unit": "minute", "requests_per_unit": 3}}
                ],
            },
            {"key": "name", "rate_limit": {"unit": "second", "requests_per_unit": 5}},
            {
                "key": "tenant",
                "descriptors": [
                    {"key": "app", "rate_limit": {"unit": "second", "requests_per_unit": 7}}
                ],
            },
        ],
    }
)


def test_a_single_key_bucket_matches_its_rule() -> None:
    match = match_bucket(POLICY, "edge", (("name", "acme"),))
    assert match is not None
    assert match.rule.full_key == "edge.name"


def test_map_pairs_are_ordered_as_the_config_nests_them() -> None:
    # sorted order is (route, user); (user, route) would not match: the config decides.
    match = match_bucket(POLICY, "edge", (("route", "api"), ("user", "alice")))
    assert match is not None
    assert match.counter_entries == (("route", "api"), ("user", "alice"))
    assert match.rule.full_key == "edge.route_api.user"
    # sorted order is (app, tenant); the config nests tenant first, and that order wins.
    nested = match_bucket(POLICY, "edge", (("app", "web"), ("tenant", "t1")))
    assert nested is not None
    assert nested.counter_entries == (("tenant", "t1"), ("app", "web"))


def test_unknown_domain_partial_path_and_empty_map_match_nothing() -> None:
    assert match_bucket(POLICY, "other", (("name", "acme"),)) is None
    assert match_bucket(POLICY, "edge", (("route", "api"),)) is None
    assert match_bucket(POLICY, "edge", (("name", "a"), ("zzz", "b"))) is None
    assert match_bucket(POLICY, "edge", ()) is None
