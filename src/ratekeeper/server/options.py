"""The flags and ``RATEKEEPER_*`` variables of ``ratekeeper serve``, and where each one lands.

Users see one flat list of options, named as envoyproxy/ratelimit names its variables where it
has one (``GRPC_PORT``, ``PORT``, ``SHADOW_MODE``, ...); the process reads typed sections
(:mod:`ratekeeper.server.settings`). :data:`OPTIONS` is the one table between the two, read by
:class:`~ratekeeper.config.flags.OptionTable` (precedence, parsing and errors are written there,
once, for the assigner's table too). Defaults are the settings' own, so they are written once.
"""

from __future__ import annotations

import dataclasses

from ratekeeper.assigner import options as assigner_options
from ratekeeper.config.flags import Option, OptionTable, parse_bool
from ratekeeper.server.settings import ALGORITHM_MODE_ALIASES, AlgorithmMode, ServerSettings

__all__ = [
    "OPTIONS",
    "add_arguments",
    "flat_values",
    "from_sources",
    "with_options",
]


def _optional(text: str) -> str | None:
    """Empty text means "none" (a second Redis that is not there)."""
    return text or None


#: The rows of ``ratekeeper assigner`` a server embedding the assigner takes as well.
_EMBEDDED = ("heartbeat_interval", "unhealthy_after", "min_interval", "load_interval")


def _embedded_assigner() -> tuple[Option, ...]:
    """The :data:`_EMBEDDED` rows of the assigner's own table, named as it names them and
    setting ``cluster.assigner``: written once, there."""
    return tuple(
        dataclasses.replace(
            row,
            path=f"cluster.assigner.{row.path}",
            help=f"Embedded assigner: {row.help[0].lower()}{row.help[1:]}",
        )
        for row in assigner_options.OPTIONS
        if row.name in _EMBEDDED
    )


_MODES = tuple(mode.value for mode in AlgorithmMode) + tuple(ALGORITHM_MODE_ALIASES)
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

#: Every option, in ``--help`` order. Names and variables are what users type: never rename one.
OPTIONS: tuple[Option, ...] = (
    Option("host", "HOST", "listeners.host", str,
           "Address the gRPC and HTTP listeners bind to."),
    Option("grpc_port", "GRPC_PORT", "listeners.grpc_port", int,
           "gRPC port (Envoy RLS, health); 0 picks one."),
    Option("grpc_uds", "GRPC_UDS", "listeners.grpc_uds", str,
           "Unix socket path to serve gRPC on as well (a local Envoy); empty: none."),
    Option("grpc_max_connection_age", "GRPC_MAX_CONNECTION_AGE",
           "listeners.grpc_max_connection_age_s", float,
           "Seconds before a client's gRPC connection is asked to reconnect; 0: never."),
    Option("grpc_max_connection_age_grace", "GRPC_MAX_CONNECTION_AGE_GRACE",
           "listeners.grpc_max_connection_age_grace_s", float,
           "Seconds calls on an aged connection get to finish before it is closed."),
    Option("http_port", "PORT", "listeners.http_port", int,
           "HTTP port (/json, /healthcheck, /metrics); 0 picks."),
    Option("config", "CONFIG", "policy.path", str,
           "Policy file or directory; empty: the embedded default config."),
    Option("merge_domains", "MERGE_DOMAIN_CONFIG", "policy.merge_domains", parse_bool,
           "Merge files that declare the same domain."),
    Option("backend", "BACKEND", "store.backend", str, "Where counters live, as a URL."),
    Option("max_keys", "MAX_KEYS", "store.max_keys", int, "Most counters the memory store holds."),
    Option("idle_expiry", "IDLE_EXPIRY", "store.idle_expiry_s", float,
           "Seconds a full (information-free) counter stays before it is dropped."),
    Option("redis_persecond_url", "REDIS_PERSECOND_URL", "store.redis.per_second_url", _optional,
           "A second Redis for per-second limits; empty: none."),
    Option("cache_key_prefix", "CACHE_KEY_PREFIX", "store.redis.key_prefix", str,
           "Prefix of every Redis key."),
    Option("redis_timeout", "REDIS_TIMEOUT", "store.redis.timeout_s", float,
           "Seconds a Redis call may take before it fails."),
    Option("redis_pool_size", "REDIS_POOL_SIZE", "store.redis.pool_size", int,
           "Connections per Redis."),
    Option("redis_reconnect_initial", "REDIS_RECONNECT_INITIAL", "store.redis.reconnect_initial_s",
           float, "Seconds before the first probe of a Redis that failed; doubles each time."),
    Option("redis_reconnect_max", "REDIS_RECONNECT_MAX", "store.redis.reconnect_max_s", float,
           "Longest wait in seconds between two probes of a Redis that is down."),
    Option("expiration_jitter_max_seconds", "EXPIRATION_JITTER_MAX_SECONDS",
           "store.redis.expiration_jitter_max_s", int,
           "Random extra life of Redis window keys, at most."),
    Option("local_cache_size", "LOCAL_CACHE_SIZE", "store.redis.local_cache_size", int,
           "Redis keys cached in process as over limit; 0: off."),
    Option("stop_cache_key_increment_when_overlimit", "STOP_CACHE_KEY_INCREMENT_WHEN_OVERLIMIT",
           "store.redis.stop_increment_when_over", parse_bool,
           "Redis: count nothing when any window of a request would go over."),
    Option("shadow_mode", "SHADOW_MODE", "answers.shadow_mode", parse_bool,
           "overall_code always OK (statuses keep OVER_LIMIT), still counting what is over."),
    Option("limit_response_headers_enabled", "LIMIT_RESPONSE_HEADERS_ENABLED",
           "answers.headers.enabled", parse_bool, "Add RateLimit-* headers to RLS responses."),
    Option("limit_limit_header", "LIMIT_LIMIT_HEADER", "answers.headers.limit", str,
           "Limit header."),
    Option("limit_remaining_header", "LIMIT_REMAINING_HEADER", "answers.headers.remaining", str,
           "Remaining header."),
    Option("limit_reset_header", "LIMIT_RESET_HEADER", "answers.headers.reset", str,
           "Reset header."),
    Option("near_limit_ratio", "NEAR_LIMIT_RATIO", "answers.near_limit_ratio", float,
           "Fraction of a limit past which hits count as near_limit."),
    Option("healthy_with_at_least_one_config_loaded", "HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED",
           "policy.require_domain", parse_bool,
           "Health NOT_SERVING while the loaded config defines no domain; off: serve anyway."),
    Option("serve_without_config", "SERVE_WITHOUT_CONFIG", "policy.serve_without_config",
           parse_bool, "A config invalid or absent at start-up: serve with no rules (every "
           "descriptor OK) and load it once it is valid, as envoyproxy/ratelimit; false: exit 2."),
    Option("response_dynamic_metadata", "RESPONSE_DYNAMIC_METADATA",
           "answers.dynamic_metadata", parse_bool,
           "Fill RLS responses' dynamic_metadata (domain, descriptors, hitsAddend, metadata)."),
    Option("algorithm", "ALGORITHM", "policy.algorithm", AlgorithmMode,
           "as_configured (each rule's own; token_bucket is an old name for it), or fixed_window "
           "to count every rule as envoyproxy/ratelimit does.", _MODES),
    Option("quota_mode", "QUOTA_MODE", "answers.quota_mode", parse_bool,
           "Treat every descriptor as a quota: OVER_LIMIT only when all of a request's are over."),
    Option("fail_closed", "FAIL_CLOSED", "answers.fail_closed", parse_bool,
           "On a store error answer OVER_LIMIT instead of OK (fail open)."),
    Option("reload_interval", "RELOAD_INTERVAL", "policy.reload_interval_s", float,
           "Seconds between checks of the config files' mtimes; 0: off."),
    Option("config_max_bytes", "CONFIG_MAX_BYTES", "policy.bounds.max_bytes", int,
           "Largest policy file read, in bytes."),
    Option("config_max_depth", "CONFIG_MAX_DEPTH", "policy.bounds.max_depth", int,
           "Deepest nesting of maps and lists in a policy file."),
    Option("config_max_nodes", "CONFIG_MAX_NODES", "policy.bounds.max_nodes", int,
           "Most values in a policy file once YAML aliases and merges are expanded."),
    Option("shutdown_grace", "SHUTDOWN_GRACE", "listeners.shutdown_grace_s", float,
           "Seconds in-flight calls get to finish after SIGTERM."),
    Option("max_stats_keys", "MAX_STATS_KEYS", "metrics.max_stats_keys", int,
           "Most distinct (domain, key) label sets in per-rule metrics."),
    Option("log_level", "LOG_LEVEL", "log_level", str, "Logging level.", _LEVELS),
    Option("join", "JOIN", "cluster.join", str,
           "HOST:PORT of the assigner or any member (several, comma-separated, are tried in "
           "turn): join that cluster; empty: run alone."),
    Option("advertise", "ADVERTISE", "cluster.advertise", str,
           "HOST:PORT others dial to reach this server; empty: the gRPC listen address."),
    Option("assigner_embedded", "ASSIGNER_EMBEDDED", "cluster.assigner_embedded", parse_bool,
           "Also run the cluster's assigner on this server's gRPC port; others --join it."),
    Option("heartbeat_timeout", "HEARTBEAT_TIMEOUT", "cluster.heartbeat_timeout_s", float,
           "Seconds a heartbeat to the assigner may take before it counts as failed."),
    Option("join_retry_max", "JOIN_RETRY_MAX", "cluster.retry_max_s", float,
           "Longest wait in seconds between heartbeats while the assigner is unreachable."),
    Option("drain_timeout", "DRAIN_TIMEOUT", "cluster.drain_timeout_s", float,
           "Seconds a stopping member waits for its slices to move away and be handed off."),
    Option("handoff_timeout", "HANDOFF_TIMEOUT", "cluster.handoff_timeout_s", float,
           "Seconds a moved range's counters are retried to (and awaited by) its new owner."),
    Option("load_window", "LOAD_WINDOW", "cluster.load_window_s", float,
           "Seconds the per-slice load sent in heartbeats is averaged over."),
    *_embedded_assigner(),
    Option("report_port", "REPORT_PORT", "listeners.report_port", int,
           "Port of the report listener (Report over the server's own HTTP/2; clients learn it); "
           "0: a free one, -1: none."),
    Option("http_idle_timeout", "HTTP_IDLE_TIMEOUT", "listeners.http_idle_timeout_s", float,
           "Seconds an HTTP connection may hold no complete request before it is closed."),
    Option("grpc_max_connection_idle", "GRPC_MAX_CONNECTION_IDLE",
           "listeners.grpc_max_connection_idle_s", float,
           "Seconds a gRPC connection may carry no call before it is closed (GOAWAY); 0: never."),
    Option("grpc_handshake_timeout", "GRPC_HANDSHAKE_TIMEOUT", "listeners.grpc_handshake_timeout_s",
           float, "Seconds a new gRPC connection gets to complete its handshake."),
    Option("grpc_keepalive_time", "GRPC_KEEPALIVE_TIME", "listeners.grpc_keepalive_time_s", float,
           "Seconds between the server's keepalive pings on a gRPC connection."),
    Option("grpc_keepalive_timeout", "GRPC_KEEPALIVE_TIMEOUT", "listeners.grpc_keepalive_timeout_s",
           float, "Seconds a keepalive ping may go unanswered before the connection is closed."),
    Option("store_domain_share", "STORE_DOMAIN_SHARE", "store.budgets.domain_share", float,
           "Most of --max-keys one domain's counters may hold (1: no budget)."),
    Option("store_client_share", "STORE_CLIENT_SHARE", "store.budgets.client_share", float,
           "Most of --max-keys the counters one reporting client created may hold (1: none)."),
    Option("store_reported_share", "STORE_REPORTED_SHARE", "store.budgets.reported_share", float,
           "Most of --max-keys all report-created counters may hold (1: no budget)."),
    Option("store_pressure_ratio", "STORE_PRESSURE_RATIO", "store.budgets.pressure_ratio", float,
           "Fill of the memory store from which /healthcheck says it is under pressure."),
    Option("max_text", "MAX_TEXT", "answers.max_text", int,
           "Longest domain, descriptor key or value an RLS request may carry (longer: refused)."),
    Option("report_max_text", "REPORT_MAX_TEXT", "reports.max_text", int,
           "Longest domain, entry key or value a report key may carry (longer: refused)."),
    Option("report_max_client_id", "REPORT_MAX_CLIENT_ID", "reports.max_client_id", int,
           "Longest client id a report may carry (longer: refused)."),
    Option("max_stats_domains", "MAX_STATS_DOMAINS", "metrics.max_stats_domains", int,
           "Most distinct domains in per-domain metric series; past it one overflow row."),
    Option("max_label_chars", "MAX_LABEL_CHARS", "metrics.max_label_chars", int,
           "Longest metric label value; longer client text is cut."),
    Option("grpc_tls_cert", "GRPC_TLS_CERT", "tls.grpc_cert", str,
           "PEM certificate of the gRPC listener: serve gRPC over TLS only; empty: plaintext."),
    Option("grpc_tls_key", "GRPC_TLS_KEY", "tls.grpc_key", str,
           "PEM private key of --grpc-tls-cert."),
    Option("grpc_tls_client_ca", "GRPC_TLS_CLIENT_CA", "tls.grpc_client_ca", str,
           "PEM CA file: gRPC clients must present a certificate it signed (mTLS)."),
    Option("http_tls_cert", "HTTP_TLS_CERT", "tls.http_cert", str,
           "PEM certificate of the HTTP listeners: serve HTTPS only; empty: plaintext."),
    Option("http_tls_key", "HTTP_TLS_KEY", "tls.http_key", str,
           "PEM private key of --http-tls-cert."),
    Option("http_tls_client_ca", "HTTP_TLS_CLIENT_CA", "tls.http_client_ca", str,
           "PEM CA file: HTTP clients must present a certificate it signed (mTLS)."),
    Option("auth_token_file", "AUTH_TOKEN_FILE", "auth.token_file", str,
           "File holding a shared token required on Report, Watch and admin endpoints."),
    Option("admin_listen", "ADMIN_LISTEN", "admin.listen", str,
           "HOST:PORT to serve /metrics and /rlconfig on instead of the HTTP port."),
    Option("cluster_tls_ca", "CLUSTER_TLS_CA", "tls.cluster_ca", str,
           "PEM CA file the channels to the assigner and other members verify them by: TLS "
           "to them (empty: the gRPC client CA when the gRPC listener has TLS, else plaintext)."),
    Option("cluster_tls_cert", "CLUSTER_TLS_CERT", "tls.cluster_cert", str,
           "PEM client certificate those channels present (empty: --grpc-tls-cert)."),
    Option("cluster_tls_key", "CLUSTER_TLS_KEY", "tls.cluster_key", str,
           "PEM private key of --cluster-tls-cert."),
)  # fmt: skip

_TABLE = OptionTable(ServerSettings, OPTIONS)

add_arguments = _TABLE.add_arguments
flat_values = _TABLE.flat_values
with_options = _TABLE.with_options
from_sources = _TABLE.from_sources
