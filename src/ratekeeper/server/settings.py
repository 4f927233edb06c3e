"""Typed settings of ``ratekeeper serve``: one field each, with its default and description.

Each field is read, lowest precedence first, from its default, from the environment variable
``RATEKEEPER_<NAME>`` (names follow envoyproxy/ratelimit's where it has one: ``GRPC_PORT``,
``PORT``, ``SHADOW_MODE``, ``LIMIT_RESPONSE_HEADERS_ENABLED``, ...), and from the command-line
flag ``--<field-name>``. Values are parsed and checked once, here; a bad value raises
:class:`~ratekeeper.errors.ConfigError` naming the variable or flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ratekeeper.errors import ConfigError

__all__ = ["ENV_PREFIX", "AlgorithmMode", "ServerSettings", "add_arguments", "from_sources"]

ENV_PREFIX = "RATEKEEPER_"


class AlgorithmMode(enum.Enum):
    """How configured limits are counted."""

    #: Each rule's own algorithm (token bucket unless the rule says otherwise).
    TOKEN_BUCKET = "token_bucket"
    #: Every rule counted in envoyproxy/ratelimit's fixed window (envoy-compat mode).
    FIXED_WINDOW = "fixed_window"


def _doc(env: str, help: str, *choices: str) -> dict[str, Any]:
    """A field's environment variable (without the prefix), description and allowed values."""
    return {"env": env, "help": help, "choices": choices}


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything ``ratekeeper serve`` can be told; see each field's description."""

    host: str = field(
        default="127.0.0.1", metadata=_doc("HOST", "Address the gRPC and HTTP listeners bind to.")
    )
    grpc_port: int = field(
        default=8081, metadata=_doc("GRPC_PORT", "gRPC port (Envoy RLS, health); 0 picks one.")
    )
    grpc_uds: str = field(
        default="",
        metadata=_doc(
            "GRPC_UDS", "Unix socket path to serve gRPC on as well (a local Envoy); empty: none."
        ),
    )
    grpc_max_connection_age: float = field(
        default=86_400.0,
        metadata=_doc(
            "GRPC_MAX_CONNECTION_AGE",
            "Seconds before a client's gRPC connection is asked to reconnect; 0: never.",
        ),
    )
    grpc_max_connection_age_grace: float = field(
        default=3_600.0,
        metadata=_doc(
            "GRPC_MAX_CONNECTION_AGE_GRACE",
            "Seconds calls on an aged connection get to finish before it is closed.",
        ),
    )
    http_port: int = field(
        default=8080, metadata=_doc("PORT", "HTTP port (/json, /healthcheck, /metrics); 0 picks.")
    )
    config: str = field(
        default="",
        metadata=_doc("CONFIG", "Policy file or directory; empty: the embedded default config."),
    )
    merge_domains: bool = field(
        default=False,
        metadata=_doc("MERGE_DOMAIN_CONFIG", "Merge files that declare the same domain."),
    )
    backend: str = field(
        default="memory://", metadata=_doc("BACKEND", "Where counters live, as a URL.")
    )
    max_keys: int = field(
        default=250_000, metadata=_doc("MAX_KEYS", "Most counters the memory store holds.")
    )
    idle_expiry: float = field(
        default=60.0,
        metadata=_doc(
            "IDLE_EXPIRY", "Seconds a full (information-free) counter stays before it is dropped."
        ),
    )
    redis_persecond_url: str = field(
        default="",
        metadata=_doc("REDIS_PERSECOND_URL", "A second Redis for per-second limits; empty: none."),
    )
    cache_key_prefix: str = field(
        default="", metadata=_doc("CACHE_KEY_PREFIX", "Prefix of every Redis key.")
    )
    redis_timeout: float = field(
        default=0.05,
        metadata=_doc("REDIS_TIMEOUT", "Seconds a Redis call may take before it fails."),
    )
    redis_pool_size: int = field(
        default=10, metadata=_doc("REDIS_POOL_SIZE", "Connections per Redis.")
    )
    expiration_jitter_max_seconds: int = field(
        default=300,
        metadata=_doc(
            "EXPIRATION_JITTER_MAX_SECONDS", "Random extra life of Redis window keys, at most."
        ),
    )
    local_cache_size: int = field(
        default=0,
        metadata=_doc("LOCAL_CACHE_SIZE", "Redis keys cached in process as over limit; 0: off."),
    )
    stop_cache_key_increment_when_overlimit: bool = field(
        default=False,
        metadata=_doc(
            "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT",
            "Redis: count nothing when any window of a request would go over.",
        ),
    )
    shadow_mode: bool = field(
        default=False,
        metadata=_doc("SHADOW_MODE", "Answer OK to everything, still counting what would be over."),
    )
    limit_response_headers_enabled: bool = field(
        default=False,
        metadata=_doc(
            "LIMIT_RESPONSE_HEADERS_ENABLED", "Add RateLimit-* headers to RLS responses."
        ),
    )
    limit_limit_header: str = field(
        default="RateLimit-Limit", metadata=_doc("LIMIT_LIMIT_HEADER", "Limit header.")
    )
    limit_remaining_header: str = field(
        default="RateLimit-Remaining", metadata=_doc("LIMIT_REMAINING_HEADER", "Remaining header.")
    )
    limit_reset_header: str = field(
        default="RateLimit-Reset", metadata=_doc("LIMIT_RESET_HEADER", "Reset header.")
    )
    near_limit_ratio: float = field(
        default=0.8,
        metadata=_doc(
            "NEAR_LIMIT_RATIO", "Fraction of a limit past which hits count as near_limit."
        ),
    )
    algorithm: AlgorithmMode = field(
        default=AlgorithmMode.TOKEN_BUCKET,
        metadata=_doc(
            "ALGORITHM",
            "token_bucket, or fixed_window to count every rule as envoyproxy/ratelimit does.",
            *(mode.value for mode in AlgorithmMode),
        ),
    )
    quota_mode: bool = field(
        default=False,
        metadata=_doc(
            "QUOTA_MODE",
            "Treat every descriptor as a quota: OVER_LIMIT only when all of a request's are over.",
        ),
    )
    fail_closed: bool = field(
        default=False,
        metadata=_doc(
            "FAIL_CLOSED", "On a store error answer OVER_LIMIT instead of OK (fail open)."
        ),
    )
    reload_interval: float = field(
        default=1.0,
        metadata=_doc(
            "RELOAD_INTERVAL", "Seconds between checks of the config files' mtimes; 0: off."
        ),
    )
    shutdown_grace: float = field(
        default=5.0,
        metadata=_doc("SHUTDOWN_GRACE", "Seconds in-flight calls get to finish after SIGTERM."),
    )
    max_stats_keys: int = field(
        default=1000,
        metadata=_doc(
            "MAX_STATS_KEYS", "Most distinct (domain, key) label sets in per-rule metrics."
        ),
    )
    log_level: str = field(
        default="INFO",
        metadata=_doc("LOG_LEVEL", "Logging level.", "DEBUG", "INFO", "WARNING", "ERROR"),
    )

    def __post_init__(self) -> None:
        for name in ("grpc_port", "http_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ConfigError(f"must be a port (0-65535), got {getattr(self, name)}", key=name)
        for name in ("max_keys", "max_stats_keys"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        for name in (
            "idle_expiry",
            "reload_interval",
            "shutdown_grace",
            "grpc_max_connection_age",
            "grpc_max_connection_age_grace",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", key=name)
        if not 0.0 <= self.near_limit_ratio <= 1.0:
            raise ConfigError("must lie in [0, 1]", key="near_limit_ratio")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


#: Parses a field's text by the field's declared type (annotations are strings here).
_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _parse_bool,
    "AlgorithmMode": AlgorithmMode,
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; an absent flag leaves the environment or default in force."""
    for f in dataclasses.fields(ServerSettings):
        meta = f.metadata
        default = f.default.value if isinstance(f.default, enum.Enum) else f.default
        extra: dict[str, Any] = {"nargs": "?", "const": "true"} if f.type == "bool" else {}
        parser.add_argument(
            _flag(f.name),
            dest=f.name,
            default=None,
            metavar=f.name.upper() if f.type != "bool" else "BOOL",
            help=f"{meta['help']} [env {ENV_PREFIX}{meta['env']}, default {default!r}]",
            **extra,
        )


def from_sources(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> ServerSettings:
    """Settings from defaults, overridden by ``environ``, overridden by ``flags`` (text values).

    Raises :class:`~ratekeeper.errors.ConfigError` naming the variable or flag at fault.
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(ServerSettings):
        env = ENV_PREFIX + f.metadata["env"]
        text, source = flags.get(f.name), _flag(f.name)
        if text is None:
            text, source = environ.get(env), env
        if text is None:
            continue
        choices = f.metadata["choices"]
        if choices and text not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}; got {text!r}", key=source)
        try:
            values[f.name] = _PARSERS[str(f.type)](text)
        except ValueError as exc:
            raise ConfigError(f"cannot parse {text!r}: {exc}", key=source) from None
    return ServerSettings(**values)
