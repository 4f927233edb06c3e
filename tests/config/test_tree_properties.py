"""Property tests: wildcards against an independent glob matcher, and the whole matcher against
a naive model of the reference's lookup over random trees."""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.config import PolicyTree
from ratekeeper.config.tree import wildcard_regex


def glob(pattern: str, text: str) -> bool:
    """Does ``pattern`` (``*`` = any run of characters) match all of ``text``? By recursion."""

    @cache
    def at(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(text)
        if pattern[i] == "*":
            return at(i + 1, j) or (j < len(text) and at(i, j + 1))
        return j < len(text) and pattern[i] == text[j] and at(i + 1, j + 1)

    return at(0, 0)


@settings(max_examples=300, deadline=None)
@given(st.text("ab*._", max_size=8), st.text("ab._*", max_size=10))
def test_wildcard_regex_agrees_with_glob(pattern: str, text: str) -> None:
    assert (wildcard_regex(pattern).fullmatch(text) is not None) == glob(pattern, text)


# --- random trees --------------------------------------------------------------------------------

KEYS = ["a", "b"]
VALUES = ["", "x", "y", "xy", "x*", "*y", "*"]
RUNTIME_VALUES = ["", "x", "y", "xy", "xxy", "*", "z"]


def _composite(descriptor: dict[str, Any]) -> str:
    value = descriptor.get("value", "")
    return f"{descriptor['key']}_{value}" if value else str(descriptor["key"])


def _descriptors(depth: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    children = _descriptors(depth - 1) if depth > 1 else st.just([])
    descriptor = st.fixed_dictionaries(
        {"key": st.sampled_from(KEYS), "value": st.sampled_from(VALUES)},
        optional={
            "limit": st.sampled_from(["1/s", "2/m"]),
            "descriptors": children,
        },
    )
    return st.lists(descriptor, max_size=4, unique_by=_composite)


def model_match(level: list[dict[str, Any]], entries: list[tuple[str, str]]) -> str | None:
    """The reference's walk, written naively over the raw descriptors."""
    path: list[str] = []
    node: dict[str, Any] | None = None
    for key, value in entries:
        composite = f"{key}_{value}"
        candidates = (
            [d for d in level if _composite(d) == composite]
            + [d for d in level if "*" in _composite(d) and glob(_composite(d), composite)]
            + [d for d in level if _composite(d) == key]
        )
        if not candidates:
            return None
        node = candidates[0]
        path.append(_composite(node))
        level = node.get("descriptors", [])
        if not level and len(path) < len(entries):
            return None
    assert node is not None
    if "limit" not in node and node.get("descriptors"):
        return None
    return "d." + ".".join(path)


@settings(max_examples=200, deadline=None)
@given(
    _descriptors(3),
    st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(RUNTIME_VALUES)), max_size=4),
)
def test_matcher_agrees_with_the_model(
    descriptors: list[dict[str, Any]], entries: list[tuple[str, str]]
) -> None:
    tree = PolicyTree.from_mapping({"domain": "d", "descriptors": descriptors})
    match = tree.match("d", entries)
    expected = model_match(descriptors, entries) if entries else None
    assert (match.rule.full_key if match else None) == expected
    if match is not None:
        assert [key for key, _ in match.counter_entries] == [key for key, _ in entries]
        assert match.stats_key == match.rule.full_key
    assert tree.describe().startswith("domain d")
