"""Hostile policy files are refused fast, in bounded memory, with one clear line (issue 16 §6)."""

from __future__ import annotations

import itertools
import time
import traceback
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.config import LoadBounds, bounded_yaml, load_config
from ratekeeper.config.bounded_yaml import DEFAULT_BOUNDS
from ratekeeper.config.document import from_yaml, to_python
from ratekeeper.errors import ConfigError


def alias_bomb(levels: int = 9, fan: int = 9) -> str:
    """The classic "billion laughs": each anchor aliases the previous one ``fan`` times."""
    names = [f"{chr(ord('a') + level % 26)}{level // 26 or ''}" for level in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [lol]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [{','.join(f'*{previous}' for _ in range(fan))}]")
    return "\n".join(lines) + "\n"


def merge_bomb(levels: int = 40) -> str:
    """Merge keys that merge the previous map twice: doubles at each level if done naively."""
    lines = ["m0: &m0 {k0: 0, j0: 0}"]
    for level in range(1, levels):
        lines.append(f"m{level}: &m{level} {{<<: [*m{level - 1}, *m{level - 1}], k{level}: 1}}")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def refused(path: Path, bounds: LoadBounds = DEFAULT_BOUNDS) -> tuple[ConfigError, float, int]:
    """The error loading ``path`` raises, the CPU seconds it took, and the peak bytes allocated
    (measured in a second load: tracing allocations slows the first one down).

    The time is this thread's CPU time, not wall time: a shared CI machine can deschedule the
    test for longer than the bound, and what the bound guards is the work the loader does."""
    started = time.thread_time()
    with pytest.raises(ConfigError) as caught:
        load_config(path, bounds=bounds)
    elapsed = time.thread_time() - started
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError):
            load_config(path, bounds=bounds)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return caught.value, elapsed, peak


def test_the_419_byte_alias_bomb_is_refused_within_a_second_in_bounded_memory(
    tmp_path: Path,
) -> None:
    text = alias_bomb()
    assert len(text.encode()) <= 419
    error, elapsed, peak = refused(write(tmp_path, text))
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024
    message = str(error)
    assert message.startswith(f"{tmp_path / 'policy.yaml'}:")
    assert "aliases expand" in message
    assert "max_nodes" in message
    assert "\n" not in message


def test_a_bigger_alias_bomb_is_refused_as_fast(tmp_path: Path) -> None:
    _, elapsed, _ = refused(write(tmp_path, alias_bomb(levels=12, fan=12)))
    assert elapsed < 1.0


def test_merge_keys_that_would_double_at_every_level_merge_each_key_once() -> None:
    started = time.thread_time()  # CPU time, untraced: see refused()
    doc = from_yaml(merge_bomb(40))
    elapsed = time.thread_time() - started
    tracemalloc.start()
    try:
        from_yaml(merge_bomb(40))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024
    last = doc.get("m39")
    assert last is not None
    assert len(last.pairs) == 41  # k0..k39 and j0, each once


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_nesting_is_one_line_naming_file_and_bound_not_a_traceback(
    tmp_path: Path, style: str
) -> None:
    depth = 5000
    if style == "flow":
        text = "domain: d\ndescriptors: " + "[" * depth + "]" * depth + "\n"
    else:
        text = "domain: d\nx:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(1, 200))
    error, elapsed, _ = refused(write(tmp_path, text))
    assert elapsed < 1.0
    message = str(error)
    assert "\n" not in message
    assert len(message) < 300
    assert message.startswith(f"{tmp_path / 'policy.yaml'}:")
    assert "nesting deeper than 64 levels" in message
    # and nothing chained behind it: the whole traceback stays short
    assert len("".join(traceback.format_exception(error)).splitlines()) < 30


def test_nesting_through_aliases_counts_too(tmp_path: Path) -> None:
    deep = "[" * 40 + "]" * 40
    text = f"a: &a {deep}\nb: &b {'[' * 30}*a{']' * 30}\n"
    error, _, _ = refused(write(tmp_path, text))
    assert "through aliases" in str(error)


def test_a_duplicate_key_is_refused_naming_file_line_and_key(tmp_path: Path) -> None:
    text = (
        "domain: d\ndescriptors:\n  - key: k\n    rate_limit:\n      unit: second\n"
        "      requests_per_unit: 5\n      requests_per_unit: 1000\n"
    )
    error, _, _ = refused(write(tmp_path, text))
    path = tmp_path / "policy.yaml"
    assert str(error) == (
        f"{path}:7: requests_per_unit: duplicate key 'requests_per_unit' (first written at line 6)"
    )
    assert (error.file, error.line, error.key) == (str(path), 7, "requests_per_unit")


def test_keys_equal_as_values_are_duplicates() -> None:
    with pytest.raises(ConfigError, match="duplicate key"):
        from_yaml("16: a\n0x10: b\n")


def test_a_merged_key_may_be_overridden_and_merged_keys_appear_once() -> None:
    doc = from_yaml("base: &b {x: 1, y: 1}\nuse: {<<: [*b, *b], y: 2}\n")
    assert to_python(doc) == {"base": {"x": 1, "y": 1}, "use": {"x": 1, "y": 2}}
    use = doc.get("use")
    assert use is not None
    assert len(use.pairs) == 2


def test_an_earlier_merge_source_wins() -> None:
    doc = from_yaml("a: &a {x: 1}\nb: &b {x: 2}\nc: {<<: [*a, *b]}\n")
    assert to_python(doc)["c"] == {"x": 1}


def test_a_recursive_alias_is_refused() -> None:
    with pytest.raises(ConfigError, match="recursive alias"):
        from_yaml("a: &a [1, *a]\n")


def test_a_merge_of_a_scalar_is_refused() -> None:
    with pytest.raises(ConfigError, match="must merge a map"):
        from_yaml("a: &a 1\nb: {<<: *a}\n")


def test_a_file_over_the_size_bound_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = write(tmp_path, "domain: d\n" + "# padding\n" * 2000)
    error, _, peak = refused(path, LoadBounds(max_bytes=1024))
    assert "larger than the bound of 1024 bytes (max_bytes)" in str(error)
    assert error.file == str(path)
    assert peak < 64 * 1024


def test_bounds_are_configurable(tmp_path: Path) -> None:
    text = "domain: d\ndescriptors:\n  - key: k\n    descriptors:\n      - key: j\n"
    path = write(tmp_path, text)
    assert load_config(path).domains == ("d",)
    error, _, _ = refused(path, LoadBounds(max_depth=3))
    assert "nesting deeper than 3 levels" in str(error)
    error, _, _ = refused(path, LoadBounds(max_nodes=5))
    assert "more than the bound of 5" in str(error)


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"bounds\.max_depth: must be >= 1"):
        LoadBounds(max_depth=0)


def test_shipped_and_ordinary_files_still_load(tmp_path: Path) -> None:
    text = (
        "domain: d\ndescriptors:\n  - &base {key: k, rate_limit: {unit: second, "
        "requests_per_unit: 5}}\n  - <<: *base\n    value: v\n"
    )
    assert load_config(write(tmp_path, text)).domains == ("d",)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: !!int abc\n", "f.yaml:1: cannot read 'abc' as int"),
        ("a: !!bool maybe\n", "f.yaml:1: cannot read 'maybe' as bool"),
        ("!!float x: 1\n", "f.yaml:1: cannot read 'x' as float"),
        ("a: !!int\n", "f.yaml:1: cannot read '' as int"),
    ],
)
def test_an_impossible_explicit_tag_is_a_config_error(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_yaml(text, file="f.yaml")
    assert str(caught.value) == reason


YAMLISH = st.text(alphabet=st.sampled_from(list("ab:-[]{}&*<!,'\"\n #|>?%@`\t0x1.~")), max_size=80)


@settings(max_examples=300, deadline=None)
@given(YAMLISH)
def test_any_text_loads_or_is_a_config_error(text: str) -> None:
    error: ConfigError | None = None
    try:
        from_yaml(text, file="f.yaml")
    except ConfigError as raised:  # anything else fails the test
        error = raised
    if error is not None:
        assert error.file == "f.yaml"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (alias_bomb(), "aliases expand"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 64 levels"),
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("---\na: 1\n---\nb: 2\n", "expected a single document"),
    ],
)
def test_the_same_refusals_without_libyaml(
    monkeypatch: pytest.MonkeyPatch, text: str, reason: str
) -> None:
    monkeypatch.setattr(bounded_yaml, "_EVENTS", yaml.SafeLoader)
    started = time.thread_time()
    with pytest.raises(ConfigError, match=reason):
        from_yaml(text, file="f.yaml")
    assert time.thread_time() - started < 1.0
    assert to_python(from_yaml("a: &x {b: 1}\nc: {<<: *x, d: 2}\n")) == {
        "a": {"b": 1},
        "c": {"b": 1, "d": 2},
    }


def test_a_complex_key_in_metadata_is_a_config_error(tmp_path: Path) -> None:
    text = "domain: d\ndescriptors:\n  - key: k\n    metadata:\n      ? [x]\n      : y\n"
    error, _, _ = refused(write(tmp_path, text))
    assert "a map key must be a single value, not a list" in str(error)
    assert error.line == 5


_WORDS = st.sampled_from(
    ["domain: d\n", "descriptors:\n", "  - key: k\n", "    value: v\n", "    rate_limit:\n",
     "      unit: second\n", "      requests_per_unit: 5\n", "    metadata: {", "? [x]\n", "&a ",
     "*a ", "<<: ", "[", "]", "{", "}", ", ", ": ", "- ", "!!int ", "!!bool ", "    ", "\n", "x"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=30).map("".join))
def test_any_policy_shaped_text_loads_or_is_a_config_error(
    tmp_path_factory: Any, text: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "p.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as raised:  # anything else fails the test
        assert raised.file == str(path)  # noqa: PT017 (the point: which errors escape)
