"""Our extensions to ``rate_limit``: several limits per key, custom periods, burst, algorithm."""

from __future__ import annotations

from typing import Any

import pytest

from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import Algorithm, Limit, Unit
from ratekeeper.errors import ConfigError


def _limits(descriptor: dict[str, Any], **root: Any) -> tuple[Limit, ...]:
    tree = PolicyTree.from_mapping(
        {"domain": "d", "descriptors": [{"key": "k", **descriptor}], **root}
    )
    match = tree.match("d", [("k", "v")])
    assert match is not None
    return match.rule.limits


@pytest.mark.parametrize(
    ("descriptor", "root", "limits"),
    [
        (
            {"rate_limit": {"unit": "minute", "unit_multiplier": 5, "requests_per_unit": 3}},
            {},
            (Limit(3, Unit.MINUTE, multiplier=5),),
        ),
        (
            {"rate_limit": {"unit": "second", "requests_per_unit": 10, "burst": 25}},
            {},
            (Limit(10, Unit.SECOND, burst=25),),
        ),
        (
            {"rate_limit": {"unit": "second", "requests_per_unit": 1, "algorithm": "Fixed_Window"}},
            {},
            (Limit(1, Unit.SECOND, algorithm=Algorithm.FIXED_WINDOW),),
        ),
        (
            {
                "rate_limits": [
                    {"unit": "second", "requests_per_unit": 10},
                    {"unit": "day", "requests_per_unit": 1000, "burst": 1000},
                ]
            },
            {},
            (Limit(10, Unit.SECOND), Limit(1000, Unit.DAY, burst=1000)),
        ),
        (
            {"limit": "10/second; 1000/day burst 20"},
            {},
            (Limit(10, Unit.SECOND), Limit(1000, Unit.DAY, burst=20)),
        ),
        # the file's algorithm is the default; a limit may still name its own
        (
            {
                "rate_limits": [
                    {"unit": "second", "requests_per_unit": 1},
                    {"unit": "hour", "requests_per_unit": 2, "algorithm": "token_bucket"},
                ]
            },
            {"algorithm": "sliding_window"},
            (
                Limit(1, Unit.SECOND, algorithm=Algorithm.SLIDING_WINDOW),
                Limit(2, Unit.HOUR),
            ),
        ),
        (
            {"limit": "5/minute"},
            {"algorithm": "fixed_window"},
            (Limit(5, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW),),
        ),
        # the reference's own block defaults to the token bucket
        ({"rate_limit": {"unit": "hour", "requests_per_unit": 9}}, {}, (Limit(9, Unit.HOUR),)),
    ],
)
def test_extension_limits(
    descriptor: dict[str, Any], root: dict[str, Any], limits: tuple[Limit, ...]
) -> None:
    assert _limits(descriptor, **root) == limits


def test_rate_limits_item_carries_the_rule_name() -> None:
    tree = PolicyTree.from_mapping(
        {
            "domain": "d",
            "descriptors": [
                {
                    "key": "k",
                    "rate_limits": [
                        {"unit": "second", "requests_per_unit": 1},
                        {
                            "unit": "day",
                            "requests_per_unit": 9,
                            "name": "n",
                            "replaces": [{"name": "o"}],
                        },
                    ],
                }
            ],
        }
    )
    match = tree.match("d", [("k", "")])
    assert match is not None
    assert (match.rule.name, match.rule.replaces) == ("n", ("o",))


@pytest.mark.parametrize(
    ("descriptor", "root", "reason", "key"),
    [
        (
            {"rate_limit": {"unit": "second"}, "limit": "1/s"},
            {},
            "give only one of rate_limit, rate_limits and limit",
            "limit",
        ),
        ({"burst": 5, "limit": "1/s"}, {}, "unknown key 'burst' in a descriptor", "burst"),
        (
            {"rate_limit": {"unit": "second", "rate_limits": []}},
            {},
            "unknown key 'rate_limits' in rate_limit",
            "rate_limits",
        ),
        ({"limit": "1/s"}, {"burst": 1}, "unknown key 'burst' in the top level", "burst"),
        (
            {"rate_limit": {"unit": "second", "unit_multiplier": 0}},
            {},
            "'unit_multiplier' must be an integer from 1",
            "unit_multiplier",
        ),
        (
            {"rate_limit": {"unit": "second", "burst": -1}},
            {},
            "'burst' must be an integer from 0",
            "burst",
        ),
        (
            {"rate_limit": {"unit": "second", "algorithm": "leaky"}},
            {},
            "unknown algorithm 'leaky'",
            "algorithm",
        ),
        ({"limit": "1/s"}, {"algorithm": "leaky"}, "unknown algorithm 'leaky'", "algorithm"),
        ({"rate_limits": []}, {}, "rate_limits must list at least one limit", "rate_limits"),
        (
            {
                "rate_limits": [
                    {"unit": "second", "name": "a"},
                    {"unit": "day", "name": "b"},
                ]
            },
            {},
            "only one item of rate_limits may carry name or replaces",
            "rate_limits",
        ),
        (
            {"rate_limits": [{"unlimited": True}]},
            {},
            "unlimited belongs in rate_limit",
            "rate_limits",
        ),
        (
            {"rate_limits": [{"unit": "fortnight"}]},
            {},
            "invalid rate limit unit 'fortnight'",
            "unit",
        ),
        ({"rate_limits": {"unit": "second"}}, {}, "'rate_limits' must be a list", "rate_limits"),
        ({"limit": "ten per second"}, {}, "cannot parse limit", "limit"),
        ({"limit": [{"key": "x"}]}, {}, "'limit' must be a scalar, not a list", "limit"),
    ],
)
def test_extension_errors(
    descriptor: dict[str, Any], root: dict[str, Any], reason: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _limits(descriptor, **root)
    assert reason in caught.value.reason
    assert caught.value.key == key


def test_units_and_algorithms_come_from_the_one_vocabulary() -> None:
    """config reads core's tables: a unit or algorithm added there is accepted here too."""
    from ratekeeper.config import fields, rate_limit
    from ratekeeper.core import limits

    assert rate_limit.UNIT_BY_NAME is limits.UNIT_BY_NAME
    assert fields.ALGORITHM_BY_NAME is limits.ALGORITHM_BY_NAME
    assert set(limits.UNIT_BY_NAME) <= set(limits.UNIT_SPELLINGS)
    assert sorted(limits.UNIT_BY_SECONDS) == sorted(unit.value for unit in limits.Unit)
