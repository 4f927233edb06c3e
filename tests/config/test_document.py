"""Located documents: YAML positions, merge keys, and Python data in the same shape."""

from __future__ import annotations

import pytest

from ratekeeper.config.document import Kind, from_python, from_yaml, to_python
from ratekeeper.errors import ConfigError


def test_yaml_values_keep_their_lines() -> None:
    doc = from_yaml("domain: d\ndescriptors:\n  - key: k\n    value: 123\n")
    descriptors = doc.get("descriptors")
    assert descriptors is not None
    item = descriptors.items[0]
    assert item.line == 3
    value = item.get("value")
    assert value is not None
    assert (value.line, value.value, value.text) == (4, 123, "123")


def test_yaml_scalars_resolve_like_yaml_1_1() -> None:
    doc = from_yaml("a: yes\nb: ~\nc: 0x10\nd: '5'\n")
    assert [value.value for _, value in doc.pairs] == [True, None, 16, "5"]


def test_merge_keys_are_flattened() -> None:
    doc = from_yaml("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n")
    assert to_python(doc) == {"base": {"x": 1}, "use": {"x": 1, "y": 2}}


def test_empty_text_is_an_empty_map() -> None:
    doc = from_yaml("# only a comment\n")
    assert (doc.kind, doc.pairs) == (Kind.MAP, ())


@pytest.mark.parametrize("text", ["a: [1, 2\n", "a: b: c\n", "---\na: 1\n---\nb: 2\n"])
def test_bad_yaml_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="error loading config file") as caught:
        from_yaml(text, file="f.yaml")
    assert caught.value.file == "f.yaml"
    assert caught.value.line is not None


def test_python_data_round_trips() -> None:
    data = {"domain": "d", "descriptors": [{"key": "k", "shadow_mode": True, "value": None}]}
    doc = from_python(data)
    assert to_python(doc) == data
    assert doc.line is None
    item = doc.get("descriptors")
    assert item is not None
    flag = item.items[0].get("shadow_mode")
    assert flag is not None
    assert flag.text == "true"
