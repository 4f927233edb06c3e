"""``ratekeeper check-config``: the loaded tree and exit 0, or the error on stderr and exit 1."""

from __future__ import annotations

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
