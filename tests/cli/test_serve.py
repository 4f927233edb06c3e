"""``ratekeeper serve`` argument handling (the serving itself: tests/server/test_app.py)."""

from __future__ import annotations

from pathlib import Path

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


def test_a_hostile_config_stops_start_up_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("domain: d\ndescriptors: " + "[" * 5000 + "]" * 5000 + "\n")
    argv = ["serve", "--config", str(path), "--grpc-port", "0", "--http-port", "0"]
    assert main([*argv, "--serve-without-config", "false"]) == 2
    (record,) = [r for r in caplog.records if r.levelname == "ERROR"]
    message = record.getMessage()
    assert message == f"cannot start: {path}:2: nesting deeper than 64 levels (max_depth)"
    assert record.exc_info is None


def test_the_old_algorithm_name_still_starts_the_same_mode() -> None:
    from ratekeeper.server.options import from_sources
    from ratekeeper.server.settings import AlgorithmMode

    settings = from_sources({}, {"RATEKEEPER_ALGORITHM": "token_bucket"})
    assert settings.policy.algorithm is AlgorithmMode.AS_CONFIGURED
