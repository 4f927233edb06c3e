"""Flags and RATEKEEPER_* variables: precedence, errors naming the source, and that every option
users had before settings were split into sections still works and lands on the same value."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from ratekeeper.errors import ConfigError
from ratekeeper.server.options import (
    OPTIONS,
    add_arguments,
    flat_values,
    from_sources,
    with_options,
)
from ratekeeper.server.settings import AlgorithmMode, ServerSettings


def parse(argv: list[str]) -> dict[str, str | None]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


#: Every option of the flat settings (main at 6067975): flag name, variable, a text to give,
#: the settings field it must land on now, and the value the flat field held for that text.
BEFORE_SECTIONS: list[tuple[str, str, str, str, Any]] = [
    ("host", "HOST", "0.0.0.0", "listeners.host", "0.0.0.0"),
    ("grpc_port", "GRPC_PORT", "9001", "listeners.grpc_port", 9001),
    ("grpc_uds", "GRPC_UDS", "/tmp/rk.sock", "listeners.grpc_uds", "/tmp/rk.sock"),
    ("grpc_max_connection_age", "GRPC_MAX_CONNECTION_AGE", "30.5",
     "listeners.grpc_max_connection_age_s", 30.5),
    ("grpc_max_connection_age_grace", "GRPC_MAX_CONNECTION_AGE_GRACE", "2",
     "listeners.grpc_max_connection_age_grace_s", 2.0),
    ("http_port", "PORT", "9002", "listeners.http_port", 9002),
    ("config", "CONFIG", "/etc/rk", "policy.path", "/etc/rk"),
    ("merge_domains", "MERGE_DOMAIN_CONFIG", "true", "policy.merge_domains", True),
    ("backend", "BACKEND", "redis://r:6379/1", "store.backend", "redis://r:6379/1"),
    ("max_keys", "MAX_KEYS", "77", "store.max_keys", 77),
    ("idle_expiry", "IDLE_EXPIRY", "12.5", "store.idle_expiry_s", 12.5),
    ("redis_persecond_url", "REDIS_PERSECOND_URL", "redis://p:6379/0",
     "store.redis.per_second_url", "redis://p:6379/0"),
    ("cache_key_prefix", "CACHE_KEY_PREFIX", "rk_", "store.redis.key_prefix", "rk_"),
    ("redis_timeout", "REDIS_TIMEOUT", "0.2", "store.redis.timeout_s", 0.2),
    ("redis_pool_size", "REDIS_POOL_SIZE", "3", "store.redis.pool_size", 3),
    ("expiration_jitter_max_seconds", "EXPIRATION_JITTER_MAX_SECONDS", "7",
     "store.redis.expiration_jitter_max_s", 7),
    ("local_cache_size", "LOCAL_CACHE_SIZE", "100", "store.redis.local_cache_size", 100),
    ("stop_cache_key_increment_when_overlimit", "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT", "yes",
     "store.redis.stop_increment_when_over", True),
    ("shadow_mode", "SHADOW_MODE", "1", "answers.shadow_mode", True),
    ("limit_response_headers_enabled", "LIMIT_RESPONSE_HEADERS_ENABLED", "on",
     "answers.headers.enabled", True),
    ("limit_limit_header", "LIMIT_LIMIT_HEADER", "X-L", "answers.headers.limit", "X-L"),
    ("limit_remaining_header", "LIMIT_REMAINING_HEADER", "X-R", "answers.headers.remaining", "X-R"),
    ("limit_reset_header", "LIMIT_RESET_HEADER", "X-T", "answers.headers.reset", "X-T"),
    ("near_limit_ratio", "NEAR_LIMIT_RATIO", "0.5", "answers.near_limit_ratio", 0.5),
    ("algorithm", "ALGORITHM", "fixed_window", "policy.algorithm", AlgorithmMode.FIXED_WINDOW),
    ("algorithm", "ALGORITHM", "token_bucket", "policy.algorithm", AlgorithmMode.AS_CONFIGURED),
    ("quota_mode", "QUOTA_MODE", "true", "answers.quota_mode", True),
    ("fail_closed", "FAIL_CLOSED", "true", "answers.fail_closed", True),
    ("reload_interval", "RELOAD_INTERVAL", "0", "policy.reload_interval_s", 0.0),
    ("shutdown_grace", "SHUTDOWN_GRACE", "1.5", "listeners.shutdown_grace_s", 1.5),
    ("max_stats_keys", "MAX_STATS_KEYS", "9", "metrics.max_stats_keys", 9),
    ("log_level", "LOG_LEVEL", "DEBUG", "log_level", "DEBUG"),
]  # fmt: skip


def read(settings: ServerSettings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("name", "env", "text", "path", "expected"), BEFORE_SECTIONS)
def test_every_option_users_had_still_works_and_lands_on_the_same_value(
    name: str, env: str, text: str, path: str, expected: Any
) -> None:
    flag = "--" + name.replace("_", "-")
    by_flag = from_sources(parse([f"{flag}={text}"]), {})
    by_env = from_sources(parse([]), {f"RATEKEEPER_{env}": text})
    assert read(by_flag, path) == expected
    assert read(by_env, path) == expected
    assert by_flag == by_env
    assert flat_values(by_flag)[name] == expected
    # and nothing else moved
    changed = {k for k, v in flat_values(by_flag).items() if v != flat_values(ServerSettings())[k]}
    assert changed <= {name}


def test_no_option_of_before_was_dropped_or_renamed() -> None:
    now = {(option.name, option.env) for option in OPTIONS}
    assert {(name, env) for name, env, *_ in BEFORE_SECTIONS} <= now


def test_every_option_has_a_description_a_variable_and_a_field() -> None:
    defaults = ServerSettings()
    names = [option.name for option in OPTIONS]
    assert len(names) == len(set(names))
    for option in OPTIONS:
        assert option.help, option.name
        assert option.env.isupper(), option.name
        read(defaults, option.path)  # the field exists


def test_defaults_are_loopback_in_memory_on_the_reference_ports() -> None:
    settings = from_sources(parse([]), {})
    assert settings == ServerSettings()
    listeners = settings.listeners
    assert (listeners.host, listeners.grpc_port, listeners.http_port) == ("127.0.0.1", 8081, 8080)
    assert (settings.store.backend, settings.policy.path) == ("memory://", "")
    assert settings.policy.algorithm is AlgorithmMode.AS_CONFIGURED
    assert settings.store.redis.per_second_url is None


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {
        "RATEKEEPER_GRPC_PORT": "9001",
        "RATEKEEPER_PORT": "9002",
        "RATEKEEPER_SHADOW_MODE": "true",
        "RATEKEEPER_LIMIT_RESPONSE_HEADERS_ENABLED": "1",
        "RATEKEEPER_ALGORITHM": "fixed_window",
    }
    settings = from_sources(parse(["--grpc-port", "7001", "--shadow-mode=false"]), env)
    assert settings.listeners.grpc_port == 7001
    assert settings.listeners.http_port == 9002
    assert settings.answers.shadow_mode is False
    assert settings.answers.headers.names == (
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
    )
    assert settings.policy.algorithm is AlgorithmMode.FIXED_WINDOW


def test_a_bare_boolean_flag_means_true() -> None:
    assert from_sources(parse(["--fail-closed"]), {}).answers.fail_closed is True


def test_reconnect_settings_reach_the_redis_section_together() -> None:
    env = {"RATEKEEPER_REDIS_RECONNECT_INITIAL": "2", "RATEKEEPER_REDIS_RECONNECT_MAX": "5"}
    redis = from_sources(parse([]), env).store.redis
    assert (redis.reconnect_initial_s, redis.reconnect_max_s) == (2.0, 5.0)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--grpc-port", "x"], {}, "--grpc-port: cannot parse 'x'"),
        ([], {"RATEKEEPER_MAX_KEYS": "lots"}, "RATEKEEPER_MAX_KEYS: cannot parse 'lots'"),
        ([], {"RATEKEEPER_SHADOW_MODE": "maybe"}, "RATEKEEPER_SHADOW_MODE: cannot parse"),
        (["--algorithm", "leaky"], {}, "--algorithm: must be one of as_configured, fixed_window"),
        (["--http-port", "70000"], {}, "--http-port: must be a port"),
        (["--near-limit-ratio", "2"], {}, "--near-limit-ratio: must lie in [0, 1]"),
        ([], {"RATEKEEPER_REDIS_TIMEOUT": "0"}, "RATEKEEPER_REDIS_TIMEOUT: must be > 0"),
        (["--config-max-depth", "0"], {}, "--config-max-depth: must be >= 1"),
        (["--redis-reconnect-initial", "9"], {}, "--redis-reconnect-initial: need 0 <"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_sources(parse(argv), env)
    assert message in str(caught.value)


def test_with_options_sets_typed_values_by_option_name() -> None:
    settings = with_options(ServerSettings(), grpc_port=0, shadow_mode=True, max_keys=5)
    assert settings.listeners.grpc_port == 0
    assert settings.answers.shadow_mode is True
    assert settings.store.max_keys == 5
    with pytest.raises(ConfigError, match="no such option"):
        with_options(ServerSettings(), grpc=1)


@pytest.mark.parametrize("spelling", ["debug", "Debug", "DEBUG"])
def test_log_level_is_case_insensitive(spelling: str) -> None:
    assert from_sources({"log_level": spelling}, {}).log_level == "DEBUG"


def test_a_bad_choice_names_the_flag_without_a_placeholder_file() -> None:
    with pytest.raises(ConfigError) as refused:
        from_sources({"log_level": "loud"}, {})
    assert str(refused.value).startswith("--log-level: must be one of")
