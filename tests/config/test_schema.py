"""Every way a file can be invalid, as the reference service rejects it, plus our own checks.

Each case is a whole file; the error must name the file, the line and the key, and carry the
reference's wording so operators can search for it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ratekeeper.config import load_config
from ratekeeper.errors import ConfigError

# (case, file text, reason fragment, line, key)
INVALID: list[tuple[str, str, str, int | None, str | None]] = [
    (
        "bad_limit_unit",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: fortnight\n",
        "invalid rate limit unit 'fortnight'",
        5,
        "unit",
    ),
    (
        "missing_unit",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      requests_per_unit: 5\n",
        "invalid rate limit unit ''",
        5,
        "unit",
    ),
    (
        "bad_yaml",
        "domain: d\ndescriptors:\n  - key: k\n    value: [unclosed\n",
        "error loading config file",
        5,
        None,
    ),
    (
        "empty_domain",
        "domain: ''\ndescriptors: []\n",
        "config file cannot have empty domain",
        1,
        "domain",
    ),
    ("no_domain", "descriptors: []\n", "config file cannot have empty domain", 1, "domain"),
    ("empty_file", "", "config file cannot have empty domain", 1, "domain"),
    (
        "empty_key",
        "domain: d\ndescriptors:\n  - value: v\n",
        "descriptor has empty key",
        3,
        "key",
    ),
    (
        "duplicate_key",
        "domain: d\ndescriptors:\n  - key: k\n    value: v\n  - key: k\n    value: v\n",
        "duplicate descriptor composite key 'd.k_v'",
        5,
        "key",
    ),
    (
        "duplicate_nested_key",
        "domain: d\ndescriptors:\n  - key: a\n    descriptors:\n      - key: b\n      - key: b\n",
        "duplicate descriptor composite key 'd.a.b'",
        6,
        "key",
    ),
    (
        "misspelled_key",
        "domain: d\ndescriptors:\n  - key: k\n    ratelimit:\n      unit: second\n",
        "config error, unknown key 'ratelimit'",
        4,
        "ratelimit",
    ),
    (
        "misspelled_key2",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n"
        "      requests_per_second: 5\n",
        "config error, unknown key 'requests_per_second'",
        6,
        "requests_per_second",
    ),
    (
        "non_map_list",
        "domain: d\ndescriptors:\n  - key: k\n  - just a string\n",
        "list of type other than map: just a string",
        4,
        "descriptors",
    ),
    (
        "non_string_key",
        "domain: d\ndescriptors:\n  - key: k\n    1: one\n",
        "config error, key is not of type string: 1",
        4,
        None,
    ),
    (
        "replaces_empty",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n"
        "      replaces:\n        - name: ''\n",
        "should not have an empty replaces entry",
        7,
        "replaces",
    ),
    (
        "replaces_self",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      name: me\n      unit: second\n"
        "      replaces:\n        - name: me\n",
        "replaces should not contain name of same descriptor",
        8,
        "replaces",
    ),
    (
        "unlimited_with_unit",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unlimited: true\n"
        "      unit: second\n",
        "should not specify rate limit unit when unlimited",
        6,
        "unit",
    ),
    (
        "negative_requests_per_unit",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n"
        "      requests_per_unit: -1\n",
        "'requests_per_unit' must be an integer from 0 to 4294967295, got '-1'",
        6,
        "requests_per_unit",
    ),
    (
        "non_int_requests_per_unit",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n"
        "      requests_per_unit: many\n",
        "'requests_per_unit' must be an integer",
        6,
        "requests_per_unit",
    ),
    (
        "too_large_requests_per_unit",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n"
        "      requests_per_unit: 4294967296\n",
        "must be an integer from 0 to 4294967295",
        6,
        "requests_per_unit",
    ),
    (
        "float_value",
        "domain: d\ndescriptors:\n  - key: k\n    value: 1.5\n",
        "unsupported value '1.5'",
        4,
        "value",
    ),
    (
        "share_threshold_without_wildcard",
        "domain: d\ndescriptors:\n  - key: k\n    value: v\n    share_threshold: true\n",
        "share_threshold can only be set when value contains '*'",
        5,
        "share_threshold",
    ),
    (
        "top_level_list",
        "- domain: d\n",
        "the top level must be a map",
        1,
        None,
    ),
    (
        "flag_not_bool",
        "domain: d\ndescriptors:\n  - key: k\n    shadow_mode: sometimes\n",
        "'shadow_mode' must be true or false",
        4,
        "shadow_mode",
    ),
    (
        "descriptors_not_a_list",
        "domain: d\ndescriptors: nope\n",
        "'descriptors' must be a list",
        2,
        "descriptors",
    ),
    (
        "rate_limit_not_a_map",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: 5/second\n",
        "'rate_limit' must be a map",
        4,
        "rate_limit",
    ),
    (
        "value_is_a_map",
        "domain: d\ndescriptors:\n  - key: k\n    value: {key: b}\n",
        "'value' must be a single value, not a map",
        4,
        "value",
    ),
    (
        "metadata_not_a_map",
        "domain: d\ndescriptors:\n  - key: k\n    metadata: [1]\n",
        "'metadata' must be a map",
        4,
        "metadata",
    ),
]


@pytest.mark.parametrize(
    ("text", "reason", "line", "key"),
    [pytest.param(*case[1:], id=case[0]) for case in INVALID],
)
def test_invalid_file(
    tmp_path: Path, text: str, reason: str, line: int | None, key: str | None
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    err = caught.value
    assert reason in err.reason
    assert err.file == str(path)
    assert err.line == line
    assert err.key == key
    assert str(err).startswith(f"{path}:{line}" if line else str(path))


VALID: list[tuple[str, str]] = [
    # the reference checks its keys against one flat set, so a misplaced known key is ignored
    ("misplaced_reference_key", "domain: d\ndescriptors:\n  - key: k\n    unit: second\n"),
    # unlimited with an unknown unit passes the reference's check
    (
        "unlimited_bad_unit",
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, unit: x}\n",
    ),
    ("null_fields", "domain: d\ndescriptors:\n  - key: k\n    value:\n    rate_limit:\n"),
    (
        "yaml_merge_keys",
        "domain: d\ndescriptors:\n  - &base {key: k, rate_limit: {unit: second}}\n"
        "  - <<: *base\n    value: v\n",
    ),
    ("empty_descriptors", "domain: d\n"),
    # (a key written twice, which the reference's decoder takes the last of, is refused here:
    # tests/config/test_bounded_yaml.py)
]


@pytest.mark.parametrize("text", [pytest.param(text, id=name) for name, text in VALID])
def test_accepted_like_the_reference(tmp_path: Path, text: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert load_config(path).domains == ("d",)
