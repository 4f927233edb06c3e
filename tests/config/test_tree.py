"""PolicyTree matching: the reference's lookup order, depth rule and counter/stats naming."""

from __future__ import annotations

from typing import Any

import pytest

from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import Algorithm, Limit, Unit

E = tuple[tuple[str, str], ...]

# (domain, entries, expected full_key or None, attributes of the matched rule)
MATCHES: list[tuple[str, E, str | None, dict[str, Any]]] = [
    # basic: the bare key is the default for any value; key_value is more specific
    ("basic", (("key1", "anything"),), "basic.key1", {"limits": (Limit(5, Unit.SECOND),)}),
    ("basic", (("key1", "special"),), "basic.key1_special", {"limits": (Limit(50, Unit.MINUTE),)}),
    ("basic", (("key1", ""),), "basic.key1", {}),
    # nested, named
    (
        "basic",
        (("key2", "value2"), ("subkey2", "x")),
        "basic.key2_value2.subkey2",
        {"name": "sub_limit", "limits": (Limit(100, Unit.HOUR),)},
    ),
    # a childless entry without rate_limit whitelists its value
    (
        "basic",
        (("key2", "value2"), ("subkey2", "open")),
        "basic.key2_value2.subkey2_open",
        {"limits": ()},
    ),
    # depth: an entry with children but no limit, at the last entry, matches nothing
    ("basic", (("key2", "value2"),), None, {}),
    # a miss at the first level matches nothing
    ("basic", (("key2", "other"), ("subkey2", "x")), None, {}),
    ("basic", (("key3", "x"),), "basic.key3", {"name": "key3_limit", "replaces": ("sub_limit",)}),
    ("basic", (("key4", "x"),), "basic.key4", {"unlimited": True, "limits": ()}),
    ("basic", (("key5", "x"),), "basic.key5", {"limits": (Limit(1, Unit.SECOND),)}),
    ("basic", (("key5", "x"), ("subkey5", "a")), "basic.key5.subkey5_a", {}),
    # no fallback to the shallower key5 limit when subkey5 misses
    ("basic", (("key5", "x"), ("subkey5", "b")), None, {}),
    # more entries than the configuration has levels
    ("basic", (("key1", "x"), ("extra", "y")), None, {}),
    ("basic", (("key2", "value2"), ("subkey2", "x"), ("deeper", "z")), None, {}),
    ("basic", (("blocked", "x"),), "basic.blocked", {"limits": (Limit(0, Unit.SECOND),)}),
    ("basic", (("shout", "x"),), "basic.shout", {"limits": (Limit(7, Unit.MINUTE),)}),
    ("basic", (("numeric", "123"),), "basic.numeric_123", {"limits": (Limit(4, Unit.WEEK),)}),
    ("basic", (("unknown", "x"),), None, {}),
    ("basic", (), None, {}),
    ("no-such-domain", (("key1", "x"),), None, {}),
    # shadow mode
    ("shadow", (("client", "trial"),), "shadow.client_trial", {"shadow_mode": True}),
    ("shadow", (("client", "paid"),), "shadow.client", {"shadow_mode": False}),
    ("shadow", (("client", "x"), ("op", "y")), "shadow.client.op", {"shadow_mode": True}),
    # wildcards: trailing, middle, several, exact before wildcard, first match in file order
    ("wildcard", (("path", "/foo/"),), "wildcard.path_/foo/*", {}),
    ("wildcard", (("path", "/foo/bar"),), "wildcard.path_/foo/*", {}),
    ("wildcard", (("path", "/foo/exact"),), "wildcard.path_/foo/exact", {}),
    ("wildcard", (("path", "/foo/q/later"),), "wildcard.path_/foo/*", {}),
    ("wildcard", (("path", "/bar/x/baz"),), "wildcard.path_/bar/*/baz", {}),
    ("wildcard", (("path", "/bar//baz"),), "wildcard.path_/bar/*/baz", {}),
    ("wildcard", (("path", "/bar/x/bazz"),), "wildcard.path", {}),
    ("wildcard", (("path", "/abc"),), "wildcard.path_/a*b*c", {}),
    ("wildcard", (("path", "/a-b-b-c"),), "wildcard.path_/a*b*c", {}),
    ("wildcard", (("path", "/acb"),), "wildcard.path", {}),
    ("wildcard", (("path", "/foo/*"),), "wildcard.path_/foo/*", {}),
    ("wildcard", (("nested", "nx"), ("inner", "abi")), "wildcard.nested_n*.inner_*i", {}),
    ("wildcard", (("nested", "nx"), ("inner", "ab")), None, {}),
    ("wildcard", (("nested", "x"), ("inner", "i")), None, {}),
]


@pytest.mark.parametrize(("domain", "entries", "full_key", "attributes"), MATCHES)
def test_match(
    valid_tree: PolicyTree,
    domain: str,
    entries: E,
    full_key: str | None,
    attributes: dict[str, Any],
) -> None:
    match = valid_tree.match(domain, entries)
    if full_key is None:
        assert match is None
        return
    assert match is not None
    assert match.rule.full_key == full_key
    assert match.rule.domain == domain
    for name, value in attributes.items():
        assert getattr(match.rule, name) == value, name


@pytest.mark.parametrize(
    ("entries", "counter"),
    [
        ((("files", "/files/a.txt"),), (("files", "/files/*"),)),
        ((("files", "/files/b.txt"),), (("files", "/files/*"),)),
        ((("files_no_share", "/files/a.txt"),), (("files_no_share", "/files/a.txt"),)),
        ((("tenant", "t1"), ("user", "u")), (("tenant", "t*"), ("user", "u"))),
    ],
)
def test_share_threshold_counts_the_pattern(valid_tree: PolicyTree, entries: E, counter: E) -> None:
    match = valid_tree.match("share", entries)
    assert match is not None
    assert match.counter_entries == counter


@pytest.mark.parametrize(
    ("domain", "entries", "stats_key"),
    [
        ("basic", (("key1", "v"),), "basic.key1"),
        ("basic", (("key6", "v"),), "basic.key6_v"),
        ("basic", (("key6", ""),), "basic.key6"),
        ("wildcard", (("path", "/foo/bar"),), "wildcard.path_/foo/*"),
        ("share", (("files", "/files/a"),), "share.files_/files/*"),
        ("metrics", (("route", "r1"), ("method", "GET")), "metrics.route_r1.method_GET"),
        ("metrics", (("route", "r1"), ("method", "POST")), "metrics.route_r1.method"),
        ("metrics", (("route", "r1"), ("detail", "d")), "metrics.route_r1.detail_d"),
    ],
)
def test_stats_key(valid_tree: PolicyTree, domain: str, entries: E, stats_key: str) -> None:
    match = valid_tree.match(domain, entries)
    assert match is not None
    assert match.stats_key == stats_key


def test_counter_entries_are_the_request_entries(valid_tree: PolicyTree) -> None:
    match = valid_tree.match("basic", [("key5", "x"), ("subkey5", "a")])
    assert match is not None
    assert match.counter_entries == (("key5", "x"), ("subkey5", "a"))


def test_metadata_is_free_form(valid_tree: PolicyTree) -> None:
    match = valid_tree.match("meta", [("quota", "q")])
    assert match is not None
    assert match.rule.quota_mode
    assert match.rule.metadata == {
        "owner": "team-a",
        "free_form_key": {"nested": [1, "two", {"three": 3}]},
        1: "any key type is allowed here",
    }


def test_domains_and_rules(valid_tree: PolicyTree) -> None:
    assert set(valid_tree.domains) == {"basic", "meta", "metrics", "shadow", "share", "wildcard"}
    keys = {rule.full_key for rule in valid_tree.rules()}
    assert "basic.key2_value2.subkey2_open" in keys  # a whitelisting leaf
    assert "basic.key2_value2" not in keys  # an inner entry without a limit
    assert "basic.key5" in keys
    assert "basic.key5.subkey5_a" in keys


def test_describe_lists_domains_descriptors_and_limits(valid_tree: PolicyTree) -> None:
    text = valid_tree.describe()
    assert "domain basic" in text
    assert "    subkey2: 100/hour  [name=sub_limit]" in text
    assert "key4: unlimited" in text
    assert "subkey2_open: whitelisted (no limit)" in text
    assert "client_trial: 1/second  [shadow_mode]" in text


def test_empty_tree() -> None:
    tree = PolicyTree.empty()
    assert tree.domains == ()
    assert tree.match("any", [("k", "v")]) is None
    assert list(tree.rules()) == []
    assert tree.describe() == "(no domains)\n"


def test_with_algorithm_retargets_every_limit(valid_tree: PolicyTree) -> None:
    fixed = valid_tree.with_algorithm(Algorithm.FIXED_WINDOW)
    assert {limit.algorithm for rule in fixed.rules() for limit in rule.limits} == {
        Algorithm.FIXED_WINDOW
    }
    match = fixed.match("wildcard", [("nested", "nx"), ("inner", "xi")])
    assert match is not None
    assert match.rule.limits == (Limit(7, Unit.SECOND, algorithm=Algorithm.FIXED_WINDOW),)
    assert valid_tree.match("basic", [("key1", "x")]) != fixed.match("basic", [("key1", "x")])


def test_from_mapping_uses_the_same_rules() -> None:
    tree = PolicyTree.from_mapping(
        {
            "domain": "py",
            "descriptors": [
                {
                    "key": "k",
                    "value": "v",
                    "rate_limit": {"unit": "second", "requests_per_unit": 3},
                },
                {"key": "flag", "shadow_mode": True, "limit": "1/s"},
            ],
        }
    )
    match = tree.match("py", [("k", "v")])
    assert match is not None
    assert match.rule.limits == (Limit(3, Unit.SECOND),)
    flagged = tree.match("py", [("flag", "x")])
    assert flagged is not None
    assert flagged.rule.shadow_mode


def test_from_mapping_merges_a_list_of_documents() -> None:
    documents = [
        {"domain": "d", "descriptors": [{"key": "a", "limit": "1/s"}]},
        {"domain": "d", "descriptors": [{"key": "b", "limit": "2/s"}]},
    ]
    tree = PolicyTree.from_mapping(documents, merge_domains=True)
    assert tree.match("d", [("a", "")]) is not None
    assert tree.match("d", [("b", "")]) is not None
