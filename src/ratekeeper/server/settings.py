"""Typed settings of ``ratekeeper serve``, in one section per part of the process.

::

    ServerSettings
    ├── listeners  ListenerSettings   where gRPC and HTTP listen, connection ageing, shutdown
    ├── policy     PolicySettings     which policy files, how they are counted and reloaded
    ├── answers    AnswerSettings     how RLS answers are shaped (shadow, quota, headers, ...)
    ├── store      StoreSettings      where counters live; its ``redis`` is a RedisSettings
    ├── reports    ReportSettings     bounds on client reports (the report service's own type)
    ├── metrics    MetricsSettings    what /metrics keeps
    ├── cluster    ClusterSettings    joining a cluster: the assigner's address, heartbeats, drain
    ├── tls        ListenerTlsSettings  TLS / mTLS on the gRPC and HTTP listeners
    ├── auth       AuthSettings       the optional shared token (Report, Watch, admin endpoints)
    └── admin      AdminSettings      /metrics and /rlconfig on their own listener

A new part of the process (TLS on the listeners, the cluster's assigner and slicelets) adds one
section here and its rows in :mod:`ratekeeper.server.options`, which maps the flat flags and
``RATEKEEPER_*`` variables users know onto these fields. Each section checks its own values
when built and raises :class:`~ratekeeper.errors.ConfigError` naming ``section.field``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.backends.budgets import BudgetSettings
from ratekeeper.backends.redis.settings import RedisSettings
from ratekeeper.config import LoadBounds
from ratekeeper.errors import ConfigError
from ratekeeper.protocol.report import ReportSettings
from ratekeeper.server.security_settings import AdminSettings, AuthSettings, ListenerTlsSettings
from ratekeeper.transport.addresses import check_address

__all__ = [
    "AlgorithmMode",
    "AnswerSettings",
    "ClusterSettings",
    "ListenerSettings",
    "MetricsSettings",
    "PolicySettings",
    "ResponseHeaders",
    "ServerSettings",
    "StoreSettings",
]


class AlgorithmMode(enum.Enum):
    """How configured limits are counted."""

    #: Each rule by its own algorithm (a token bucket unless the rule names another).
    AS_CONFIGURED = "as_configured"
    #: Every rule counted in envoyproxy/ratelimit's fixed window (envoy-compat mode).
    FIXED_WINDOW = "fixed_window"

    @classmethod
    def _missing_(cls, value: object) -> AlgorithmMode | None:
        return ALGORITHM_MODE_ALIASES.get(str(value))


#: Older spellings still accepted: ``token_bucket`` was the name of "each rule's own algorithm".
ALGORITHM_MODE_ALIASES: dict[str, AlgorithmMode] = {"token_bucket": AlgorithmMode.AS_CONFIGURED}


def _at_least(section: str, owner: object, low: float, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if value < low:
            raise ConfigError(f"must be >= {low:g}, got {value}", key=f"{section}.{name}")


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    """Where the process listens, and how long connections and shutdown take."""

    #: Address the gRPC and HTTP listeners bind to.
    host: str = "127.0.0.1"
    #: gRPC port (Envoy RLS, Report, health); 0 picks a free one.
    grpc_port: int = 8081
    #: Unix socket path to serve gRPC on as well (a local Envoy); empty: none.
    grpc_uds: str = ""
    #: Seconds before a client's gRPC connection is asked to reconnect; 0: never. Envoy holds
    #: one connection per upstream for as long as it lives, so ageing lets new replicas in.
    grpc_max_connection_age_s: float = 86_400.0
    #: Seconds calls on an aged connection get to finish before it is closed.
    grpc_max_connection_age_grace_s: float = 3_600.0
    #: HTTP port (/json, /healthcheck, /metrics); 0 picks a free one.
    http_port: int = 8080
    #: Port of the report listener: Report (and ShouldRateLimit) over the server's own HTTP/2,
    #: with the gRPC port's TLS, token and connection bounds; clients learn it from their first
    #: answer. 0 picks a free one; -1: none (reports go to the gRPC port).
    report_port: int = -1
    #: Seconds in-flight calls get to finish after SIGTERM.
    shutdown_grace_s: float = 5.0
    #: Seconds an HTTP connection may hold no complete request (a fresh one, one between
    #: keep-alive requests, one trickling its headers) before it is closed.
    http_idle_timeout_s: float = 60.0
    #: Seconds a gRPC connection may carry no call before it is sent GOAWAY; 0: never.
    grpc_max_connection_idle_s: float = 300.0
    #: Seconds a new gRPC connection gets to complete its handshake (HTTP/2 preface, TLS).
    grpc_handshake_timeout_s: float = 10.0
    #: Seconds between the server's keepalive pings on a gRPC connection, and how long an
    #: answer may take before the peer is taken for dead and the connection closed.
    grpc_keepalive_time_s: float = 120.0
    grpc_keepalive_timeout_s: float = 20.0

    def __post_init__(self) -> None:
        for name in ("grpc_port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise ConfigError(f"must be a port (0-65535), got {port}", key=f"listeners.{name}")
        if not -1 <= self.report_port <= 65535:
            raise ConfigError(
                f"must be a port (0-65535) or -1, got {self.report_port}",
                key="listeners.report_port",
            )
        _at_least(
            "listeners",
            self,
            0,
            "grpc_max_connection_age_s",
            "grpc_max_connection_age_grace_s",
            "shutdown_grace_s",
            "grpc_max_connection_idle_s",
        )
        _at_least(
            "listeners",
            self,
            0.001,
            "http_idle_timeout_s",
            "grpc_handshake_timeout_s",
            "grpc_keepalive_time_s",
            "grpc_keepalive_timeout_s",
        )


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Where the rate limit policy comes from and how it is counted and reloaded."""

    #: Policy file or directory; empty: the embedded default config.
    path: str = ""
    #: Let several files declare the same domain (the reference's ``MERGE_DOMAIN_CONFIG``).
    merge_domains: bool = False
    #: Count each rule as configured, or every rule in a fixed window.
    algorithm: AlgorithmMode = AlgorithmMode.AS_CONFIGURED
    #: Seconds between checks of the files' mtimes; 0: reload only on SIGHUP.
    reload_interval_s: float = 1.0
    #: What one policy file may hold at most (size, nesting, aliases): see LoadBounds.
    bounds: LoadBounds = field(default_factory=LoadBounds)
    #: Health is NOT_SERVING while the loaded config defines no domain (the reference's
    #: ``HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED``); off: an empty config serves (OK to all).
    require_domain: bool = False
    #: A config invalid or absent at start-up: serve with no rules (every descriptor OK) and
    #: load it once it is valid, as envoyproxy/ratelimit starts anyway; off: exit 2.
    serve_without_config: bool = True

    def __post_init__(self) -> None:
        _at_least("policy", self, 0, "reload_interval_s")


@dataclass(frozen=True, slots=True)
class ResponseHeaders:
    """The ``RateLimit-*`` headers added to RLS answers (draft-ietf-httpapi-ratelimit-headers)."""

    #: Add the headers at all.
    enabled: bool = False
    #: Name of the header carrying the limit.
    limit: str = "RateLimit-Limit"
    #: Name of the header carrying what remains.
    remaining: str = "RateLimit-Remaining"
    #: Name of the header carrying the seconds until reset.
    reset: str = "RateLimit-Reset"

    @property
    def names(self) -> tuple[str, str, str] | None:
        """``(limit, remaining, reset)`` when enabled, else ``None``."""
        return (self.limit, self.remaining, self.reset) if self.enabled else None


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """How an RLS answer is shaped from the counts."""

    #: overall_code always OK (statuses keep OVER_LIMIT), still counting what is over.
    shadow_mode: bool = False
    #: Treat every descriptor as a quota: OVER_LIMIT only when all of a request's are over.
    quota_mode: bool = False
    #: On a store error answer OVER_LIMIT instead of OK (fail open).
    fail_closed: bool = False
    #: Fraction of a limit past which hits count as near_limit.
    near_limit_ratio: float = 0.8
    #: The ``RateLimit-*`` response headers.
    headers: ResponseHeaders = field(default_factory=ResponseHeaders)
    #: Longest domain, descriptor key or value an RLS request may carry; longer is refused.
    max_text: int = 1024
    #: Fill RLS responses' ``dynamic_metadata`` (domain, descriptors, hits, rules' metadata).
    dynamic_metadata: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.near_limit_ratio <= 1.0:
            raise ConfigError("must lie in [0, 1]", key="answers.near_limit_ratio")
        _at_least("answers", self, 1, "max_text")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where counters live: the backend URL picks the store; each store reads its own fields."""

    #: ``memory://``, or a Redis URL (``redis://``, ``rediss://``, ``unix://``).
    backend: str = "memory://"
    #: Most counters the memory store holds.
    max_keys: int = 250_000
    #: Seconds a full (information-free) memory counter stays before it is dropped.
    idle_expiry_s: float = 60.0
    #: The Redis store's settings; its ``url`` is taken from :attr:`backend`.
    redis: RedisSettings = field(default_factory=RedisSettings)
    #: Shares of ``max_keys`` one domain or reporting client may hold (memory store).
    budgets: BudgetSettings = field(default_factory=BudgetSettings)

    def __post_init__(self) -> None:
        _at_least("store", self, 1, "max_keys")
        _at_least("store", self, 0, "idle_expiry_s")

    @property
    def backend_for_logs(self) -> str:
        """:attr:`backend` with any password in it replaced by ``***``: safe for a log line."""
        return redacted_url(self.backend)


def redacted_url(url: str) -> str:
    """``url`` with the password of its user-info part replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """What ``/metrics`` keeps."""

    #: Most distinct (domain, key) label sets in per-rule metrics.
    max_stats_keys: int = 1000
    #: Most distinct domains in per-domain series (unknown domains); past it, one overflow row.
    max_stats_domains: int = 100
    #: Longest metric label value; longer client text is cut to it.
    max_label_chars: int = 256

    def __post_init__(self) -> None:
        _at_least("metrics", self, 1, "max_stats_keys", "max_stats_domains", "max_label_chars")


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Whether and how this server is a member of a cluster (``serve --join``)."""

    #: ``host:port`` of the assigner or of any member, to join through, or several separated
    #: by commas (highly available assigners: tried in turn until one answers); empty: not
    #: joining (a single server, unless :attr:`assigner_embedded`).
    join: str = ""
    #: The ``host:port`` clients and members dial to reach this server: its name in
    #: assignments. Empty: the gRPC listen address (``listeners.host:grpc_port``).
    advertise: str = ""
    #: This server also runs the assigner on its gRPC port; others join it.
    assigner_embedded: bool = False
    #: The embedded assigner's timeouts (its ``listen`` is unused: it serves on the gRPC port).
    assigner: AssignerSettings = field(default_factory=AssignerSettings)
    #: Seconds between heartbeats until the assigner names its own interval.
    heartbeat_interval_s: float = 1.0
    #: Seconds one heartbeat (or relayed call) may take before it counts as failed.
    heartbeat_timeout_s: float = 1.0
    #: Seconds before the first retry after a failed heartbeat; doubles with each failure.
    retry_initial_s: float = 0.1
    #: Longest wait in seconds between two attempts while the assigner is unreachable (the
    #: held assignment is kept meanwhile). Keep it below the assigner's unhealthy timeout.
    retry_max_s: float = 2.0
    #: Seconds each Watch to the assigner is held open (assignments arrive as they are made).
    watch_wait_s: float = 30.0
    #: Seconds a stopping member waits for its slices to be moved away and handed off.
    drain_timeout_s: float = 10.0
    #: Seconds the per-slice load in heartbeats is averaged over. Longer: steadier figures for
    #: the rebalancer, slower to show a shift.
    load_window_s: float = 5.0
    #: Seconds a member keeps retrying to hand a moved range's counters to its new owner, and a
    #: new owner waits for them before taking the old owner for dead (the range's counters then
    #: start empty either way: no fresh burst).
    handoff_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        for name, values in (("join", self.join_targets), ("advertise", (self.advertise,))):
            for value in values:
                if not value:
                    continue
                try:
                    check_address(value)
                except ValueError as exc:
                    raise ConfigError(str(exc), key=f"cluster.{name}") from None
        _at_least("cluster", self, 0, "drain_timeout_s")
        for name in ("heartbeat_interval_s", "heartbeat_timeout_s", "retry_initial_s",
                     "watch_wait_s", "load_window_s", "handoff_timeout_s"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ConfigError(f"must be > 0, got {getattr(self, name)}", key=f"cluster.{name}")
        if self.retry_max_s < self.retry_initial_s:
            raise ConfigError("must be >= cluster.retry_initial_s", key="cluster.retry_max_s")
        if self.join and self.assigner_embedded:
            raise ConfigError(
                "a server embedding the assigner is the one others join; it joins nobody",
                key="cluster.join",
            )

    @property
    def join_targets(self) -> tuple[str, ...]:
        """The addresses of :attr:`join`, in the order they are tried."""
        return tuple(part.strip() for part in self.join.split(",") if part.strip())

    @property
    def enabled(self) -> bool:
        """Whether this server is a cluster member at all."""
        return bool(self.join) or self.assigner_embedded


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Everything ``ratekeeper serve`` can be told, by section (see the module docstring)."""

    listeners: ListenerSettings = field(default_factory=ListenerSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    answers: AnswerSettings = field(default_factory=AnswerSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    tls: ListenerTlsSettings = field(default_factory=ListenerTlsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    #: Logging level: DEBUG, INFO, WARNING or ERROR.
    log_level: str = "INFO"
