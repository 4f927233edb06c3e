"""The top-level command: a description users can read, ``--version``."""

from __future__ import annotations

import pytest

import ratekeeper
from ratekeeper.cli.main import build_parser, main


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"ratekeeper {ratekeeper.__version__}"
    assert ratekeeper.__version__[0].isdigit()


def test_help_describes_the_program_not_the_module() -> None:
    text = build_parser().format_help()
    assert "distributed rate limiter" in text
    assert "subcommand per module" not in text
