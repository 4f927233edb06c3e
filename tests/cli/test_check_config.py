"""``ratekeeper check-config``: the loaded tree and exit 0, or the error on stderr and exit 1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ratekeeper.cli.main import main

EXAMPLES = Path(__file__).parents[2] / "examples" / "config"


def test_prints_the_example_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "domain rl" in out
    assert "domain api" in out
    assert "    user: 3/minute" in out
    assert "api_key: 10/second burst 20; 10000/day" in out
    assert "export: 3/5 minutes" in out


def test_reports_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight}\n")
    assert main(["check-config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:4: unit: invalid rate limit unit 'fortnight'" in captured.err


def test_merge_domains_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(f"domain: d\ndescriptors:\n  - key: {name}\n")
    assert main(["check-config", str(tmp_path)]) == 1
    assert "duplicate domain 'd'" in capsys.readouterr().err
    assert main(["check-config", "--merge-domains", str(tmp_path)]) == 0
    assert "  b: whitelisted (no limit)" in capsys.readouterr().out


BOMB = "a: &a [lol]\n" + "".join(
    f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]\n"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BOMB, "aliases expand"),
        ("domain: d\ndescriptors: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 64"),
        ("domain: d\ndomain: e\n", "2: domain: duplicate key 'domain' (first written at line 1)"),
    ],
)
def test_a_hostile_file_is_one_line_on_stderr_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    started = time.thread_time()  # CPU time: the bound is on the work, not the machine's load
    assert main(["check-config", str(path)]) == 1
    assert time.thread_time() - started < 1.0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: {path}:")
    assert reason in err


def test_bounds_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("domain: d\ndescriptors:\n  - key: k\n")
    assert main(["check-config", str(path)]) == 0
    capsys.readouterr()
    assert main(["check-config", "--config-max-depth", "2", str(path)]) == 1
    assert "nesting deeper than 2 levels" in capsys.readouterr().err
    assert main(["check-config", "--config-max-bytes", "10", str(path)]) == 1
    assert "larger than the bound of 10 bytes" in capsys.readouterr().err


MISINDENTED = """\
domain: d
descriptors:
  - key: k
    rate_limit:
    unit: minute
    requests_per_unit: 5
  - key: parent
    descriptors:
      - key: child
        value: v
  - key: fine
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: open
    rate_limit: {unlimited: true}
"""


def test_strict_refuses_rules_that_limit_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "trap.yaml"
    path.write_text(MISINDENTED)
    assert main(["check-config", str(path)]) == 0  # valid, as in the reference
    assert "  k: whitelisted (no limit)" in capsys.readouterr().out
    assert main(["check-config", "--strict", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"error: {path}:3: k: limits nothing and has no children")
    assert "unit: and requests_per_unit: are indented under rate_limit:" in lines[0]
    assert lines[1].startswith(f"error: {path}:9: parent.child_v: limits nothing")


def test_strict_passes_a_config_where_every_rule_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "domain: d\ndescriptors:\n"
        "  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 5}\n"
    )
    assert main(["check-config", "--strict", str(path)]) == 0
    assert capsys.readouterr().err == ""
