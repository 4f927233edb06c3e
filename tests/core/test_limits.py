"""Limit values and the limit-string grammar."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.limits import (
    NS_PER_SECOND,
    Algorithm,
    Limit,
    Unit,
    ceil_div,
    parse_limit,
    parse_limits,
    window_start,
)
from ratekeeper.errors import LimitParseError, RatekeeperError

from .strategies import FAST, THOROUGH, limits


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100/second", Limit(100, Unit.SECOND)),
        ("100 per second", Limit(100, Unit.SECOND)),
        ("100/seconds", Limit(100, Unit.SECOND)),
        ("1 per minute", Limit(1, Unit.MINUTE)),
        ("10/5 minutes", Limit(10, Unit.MINUTE, 5)),
        ("10 per 5 minutes", Limit(10, Unit.MINUTE, 5)),
        ("10/5m", Limit(10, Unit.MINUTE, 5)),  # django-ratelimit
        ("5/m", Limit(5, Unit.MINUTE)),
        ("100/s burst 200", Limit(100, Unit.SECOND, burst=200)),
        ("100 per 2 hours burst 0", Limit(100, Unit.HOUR, 2, burst=0)),
        ("0/second", Limit(0)),
        ("  7 / 3 d  ", Limit(7, Unit.DAY, 3)),
        ("7/3d", Limit(7, Unit.DAY, 3)),
        ("100 PER Second", Limit(100, Unit.SECOND)),
        ("100/S BURST 5", Limit(100, Unit.SECOND, burst=5)),
        ("10/MO", Limit(10, Unit.MONTH)),
        ("10/minute (fixed_window)", Limit(10, Unit.MINUTE, algorithm=Algorithm.FIXED_WINDOW)),
        (
            "10/5 minutes burst 3 (SLIDING_WINDOW)",
            Limit(10, Unit.MINUTE, 5, 3, Algorithm.SLIDING_WINDOW),
        ),
        ("10/s(token_bucket)", Limit(10)),
    ],
)
def test_parse_limit_spellings(text: str, expected: Limit) -> None:
    assert parse_limit(text) == expected


@pytest.mark.parametrize(
    ("names", "unit"),
    [
        (("s", "sec", "second", "seconds"), Unit.SECOND),
        (("m", "min", "minute", "minutes"), Unit.MINUTE),
        (("h", "hr", "hour", "hours"), Unit.HOUR),
        (("d", "day", "days"), Unit.DAY),
        (("w", "week", "weeks"), Unit.WEEK),
        (("mo", "month", "months"), Unit.MONTH),
        (("y", "year", "years"), Unit.YEAR),
    ],
)
def test_every_unit_name(names: tuple[str, ...], unit: Unit) -> None:
    for name in names:
        for spelling in (name, name.upper(), name.title()):
            assert parse_limit(f"3/{spelling}") == Limit(3, unit)
            assert parse_limit(f"3 per 2 {spelling}") == Limit(3, unit, 2)


@pytest.mark.parametrize(
    ("unit", "seconds"),
    [
        (Unit.SECOND, 1),
        (Unit.MINUTE, 60),
        (Unit.HOUR, 3600),
        (Unit.DAY, 86_400),
        (Unit.WEEK, 7 * 86_400),
        (Unit.MONTH, 30 * 86_400),
        (Unit.YEAR, 365 * 86_400),
    ],
)
def test_periods(unit: Unit, seconds: int) -> None:
    assert unit.seconds == seconds
    limit = Limit(10, unit, 3)
    assert limit.period_s == 3 * seconds
    assert limit.period_ns == 3 * seconds * NS_PER_SECOND


def test_derived_quantities() -> None:
    assert Limit(100).capacity == 100
    assert Limit(100, burst=250).capacity == 250
    assert Limit(100, burst=0).capacity == 0
    assert Limit(10, Unit.MINUTE, 5).rate_per_s == pytest.approx(10 / 300)


@pytest.mark.parametrize("separator", [";", ",", "|", " ; ", " , ", " | "])
def test_parse_limits_separators(separator: str) -> None:
    assert parse_limits(f"10/second{separator}1000/day") == (
        Limit(10, Unit.SECOND),
        Limit(1000, Unit.DAY),
    )


def test_parse_limits_mixed_and_trailing_separators() -> None:
    assert parse_limits("1/s; 5/m, 100/h | 1000/d;") == (
        Limit(1, Unit.SECOND),
        Limit(5, Unit.MINUTE),
        Limit(100, Unit.HOUR),
        Limit(1000, Unit.DAY),
    )


def test_parse_algorithm_argument_is_the_default() -> None:
    fixed = Algorithm.FIXED_WINDOW
    assert parse_limit("10/s", algorithm=fixed).algorithm is fixed
    assert parse_limits("10/s; 1/d", algorithm=fixed)[1].algorithm is fixed
    # A suffix in the text wins: it is what str() writes.
    named = parse_limit("10/s (sliding_window)", algorithm=fixed)
    assert named.algorithm is Algorithm.SLIDING_WINDOW


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "abc",
        "10",
        "10/",
        "/second",
        "10/fortnight",
        "10/0 minutes",
        "10 per 0 s",
        "-1/s",
        "10/-1 s",
        "1.5/s",
        "10/s burst",
        "10/s burst -1",
        "10/s burst 1.5",
        "10/s bursts 5",
        "10 second",
        "10 per",
        "10/s (leaky_bucket)",
        "10/s ()",
        "10/s fixed_window",
        "10/s; 5/m",  # parse_limit takes one limit
        "\u0661\u0660/s",  # Arabic-Indic digits: the grammar is ASCII
        "10/\u017fec",  # LONG S folds to 's' case-insensitively unless ASCII-only
        "10/\u212a",  # KELVIN SIGN folds to 'k'
        "10\u00a0per\u00a0second",  # no-break spaces
    ],
)
def test_parse_limit_rejects_and_names_the_text(text: str) -> None:
    with pytest.raises(LimitParseError) as info:
        parse_limit(text)
    assert repr(text) in str(info.value)
    # One hierarchy, and usable where a ValueError is expected.
    assert isinstance(info.value, RatekeeperError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["", " ; ", ",|;", "10/s; abc", "10/s, 10/fortnight"])
def test_parse_limits_rejects(text: str) -> None:
    with pytest.raises(LimitParseError, match="cannot parse limit"):
        parse_limits(text)


def test_parse_limits_names_the_bad_part() -> None:
    with pytest.raises(LimitParseError, match="10/fortnight"):
        parse_limits("10/s, 10/fortnight")


@pytest.mark.parametrize(
    ("amount", "multiplier", "burst", "message"),
    [(-1, 1, None, "amount"), (1, 0, None, "multiplier"), (1, 1, -1, "burst")],
)
def test_limit_validates(amount: int, multiplier: int, burst: int | None, message: str) -> None:
    with pytest.raises(LimitParseError, match=message):
        Limit(amount, Unit.SECOND, multiplier, burst)


def test_limit_is_a_hashable_value() -> None:
    assert Limit(10, Unit.MINUTE) == parse_limit("10/minute")
    assert len({Limit(10), parse_limit("10/s"), parse_limit("10 per 1 second")}) == 1
    with pytest.raises(AttributeError):
        Limit(10).amount = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("limit", "text"),
    [
        (Limit(100), "100/second"),
        (Limit(10, Unit.MINUTE, 5), "10/5 minutes"),
        (Limit(100, burst=200), "100/second burst 200"),
        (Limit(1, Unit.DAY, algorithm=Algorithm.FIXED_WINDOW), "1/day (fixed_window)"),
    ],
)
def test_str(limit: Limit, text: str) -> None:
    assert str(limit) == text


@THOROUGH
@given(limits())
def test_str_round_trips(limit: Limit) -> None:
    assert parse_limit(str(limit)) == limit


@FAST
@given(st.lists(limits(), min_size=1, max_size=5), st.sampled_from([";", ",", "|", " ; "]))
def test_parse_limits_round_trips(group: list[Limit], separator: str) -> None:
    assert parse_limits(separator.join(map(str, group))) == tuple(group)


@THOROUGH
@given(st.text(max_size=30))
def test_parse_limit_raises_only_limit_parse_error(text: str) -> None:
    """Arbitrary text either parses to a limit that prints back equivalently or is refused."""
    try:
        limit = parse_limit(text)
    except LimitParseError as error:
        refusal = str(error)
    else:
        assert parse_limit(str(limit)) == limit
        return
    assert repr(text) in refusal


@FAST
@given(limit=limits())
def test_a_limit_is_rebuilt_from_its_identity_of_plain_values(limit: Limit) -> None:
    assert Limit.from_identity(limit.identity) == limit
    gc.collect(0)  # the young collection that untracks tuples of plain values
    assert not gc.is_tracked(limit.identity)  # what lets a store hold many without the GC


@FAST
@given(limits(), st.integers(min_value=0, max_value=2**62))
def test_window_start_is_the_aligned_period_holding_now(limit: Limit, now: int) -> None:
    start = window_start(limit, now)
    assert start % limit.period_s == 0
    assert start * NS_PER_SECOND <= now < (start + limit.period_s) * NS_PER_SECOND


@FAST
@given(st.integers(min_value=-(2**70), max_value=2**70), st.integers(min_value=1, max_value=2**40))
def test_ceil_div_rounds_up_exactly(a: int, b: int) -> None:
    q = ceil_div(a, b)
    assert (q - 1) * b < a <= q * b
