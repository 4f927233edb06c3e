"""Settings: defaults, environment, flags (which win), and errors that name the source."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from ratekeeper.errors import ConfigError
from ratekeeper.server.settings import AlgorithmMode, ServerSettings, add_arguments, from_sources


def parse(argv: list[str]) -> dict[str, str | None]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def test_defaults_are_loopback_in_memory_on_the_reference_ports() -> None:
    settings = from_sources(parse([]), {})
    assert settings == ServerSettings()
    assert (settings.host, settings.grpc_port, settings.http_port) == ("127.0.0.1", 8081, 8080)
    assert (settings.backend, settings.config) == ("memory://", "")
    assert settings.algorithm is AlgorithmMode.TOKEN_BUCKET
    assert settings.near_limit_ratio == 0.8


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {
        "RATEKEEPER_GRPC_PORT": "9001",
        "RATEKEEPER_PORT": "9002",
        "RATEKEEPER_SHADOW_MODE": "true",
        "RATEKEEPER_LIMIT_RESPONSE_HEADERS_ENABLED": "1",
        "RATEKEEPER_ALGORITHM": "fixed_window",
    }
    settings = from_sources(parse(["--grpc-port", "7001", "--shadow-mode=false"]), env)
    assert settings.grpc_port == 7001
    assert settings.http_port == 9002
    assert settings.shadow_mode is False
    assert settings.limit_response_headers_enabled is True
    assert settings.algorithm is AlgorithmMode.FIXED_WINDOW


def test_a_bare_boolean_flag_means_true() -> None:
    assert from_sources(parse(["--fail-closed"]), {}).fail_closed is True


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--grpc-port", "x"], {}, "--grpc-port: cannot parse 'x'"),
        ([], {"RATEKEEPER_MAX_KEYS": "lots"}, "RATEKEEPER_MAX_KEYS: cannot parse 'lots'"),
        ([], {"RATEKEEPER_SHADOW_MODE": "maybe"}, "RATEKEEPER_SHADOW_MODE: cannot parse"),
        (["--algorithm", "leaky"], {}, "--algorithm: must be one of token_bucket, fixed_window"),
        (["--http-port", "70000"], {}, "http_port: must be a port"),
        (["--near-limit-ratio", "2"], {}, "near_limit_ratio: must lie in [0, 1]"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_sources(parse(argv), env)
    assert message in str(caught.value)


def test_every_setting_has_a_description_and_an_environment_variable() -> None:
    for f in dataclasses.fields(ServerSettings):
        assert f.metadata["help"], f.name
        assert f.metadata["env"].isupper(), f.name
