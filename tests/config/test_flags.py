"""The option table over any settings tree: precedence, and errors naming where values came from."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from ratekeeper.config.flags import Option, OptionTable, parse_bool
from ratekeeper.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Inner:
    low: int = 1
    high: int = 2

    def __post_init__(self) -> None:
        if self.low > self.high:  # another package's check: a plain ValueError
            raise ValueError("low must be at most high")


@dataclass(frozen=True, slots=True)
class Root:
    inner: Inner = field(default_factory=Inner)
    loud: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        if self.loud and self.name is None:
            raise ValueError("a loud root needs a name")


TABLE = OptionTable(
    Root,
    (
        Option("low", "LOW", "inner.low", int, "Low."),
        Option("high", "HIGH", "inner.high", int, "High."),
        Option("loud", "LOUD", "loud", parse_bool, "Loud."),
        Option("name", "NAME", "name", str, "Name.", choices=("Ann", "Bob")),
    ),
)


def test_a_flag_beats_its_variable_which_beats_the_default() -> None:
    assert TABLE.from_sources({}, {}) == Root()
    assert TABLE.from_sources({}, {"RATEKEEPER_LOW": "0"}).inner.low == 0
    assert TABLE.from_sources({"low": "-1"}, {"RATEKEEPER_LOW": "0"}).inner.low == -1


def test_choices_are_matched_in_any_case() -> None:
    assert TABLE.from_sources({"name": "ann"}, {}).name == "Ann"
    with pytest.raises(ConfigError, match=r"RATEKEEPER_NAME.*one of Ann, Bob"):
        TABLE.from_sources({}, {"RATEKEEPER_NAME": "Cy"})


def test_a_section_refusing_a_value_is_named_and_a_root_refusal_names_the_last_source() -> None:
    with pytest.raises(ConfigError, match=r"inner.*low must be at most high"):
        TABLE.from_sources({"low": "5"}, {})
    with pytest.raises(ConfigError, match=r"--loud.*needs a name"):
        TABLE.from_sources({"loud": "yes"}, {})
    with pytest.raises(ConfigError, match=r"--low.*cannot parse"):
        TABLE.from_sources({"low": "x"}, {})


def test_with_options_sets_typed_values_by_name_and_refuses_unknown_names() -> None:
    assert TABLE.with_options(Root(), high=9).inner == Inner(1, 9)
    assert TABLE.flat_values(Root()) == {"low": 1, "high": 2, "loud": False, "name": None}
    with pytest.raises(ConfigError, match="no such option"):
        TABLE.with_options(Root(), nope=1)


def test_help_shows_each_variable_and_default() -> None:
    parser = argparse.ArgumentParser()
    TABLE.add_arguments(parser)
    text = parser.format_help()
    assert "RATEKEEPER_HIGH, default 2" in text
    assert "default none" in text  # an unset field
    assert vars(parser.parse_args(["--loud"]))["loud"] == "true"  # a bare boolean flag
