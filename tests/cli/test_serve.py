"""``ratekeeper serve`` argument handling (the serving itself: tests/server/test_app.py)."""

from __future__ import annotations

import pytest

from ratekeeper.cli.main import main


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve", "--grpc-port", "x"], {}, "--grpc-port: cannot parse 'x'"),
        (["serve"], {"RATEKEEPER_ALGORITHM": "leaky"}, "RATEKEEPER_ALGORITHM: must be one of"),
    ],
)
def test_bad_settings_exit_2_naming_the_source(
    argv: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_help_lists_every_setting_with_its_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    for flag, env in (("--grpc-port", "RATEKEEPER_GRPC_PORT"), ("--http-port", "RATEKEEPER_PORT")):
        assert flag in text
        assert env in text
