"""Settings sections: defaults, checks naming section.field, and the algorithm mode's names."""

from __future__ import annotations

import pytest

from ratekeeper.errors import ConfigError
from ratekeeper.server.settings import (
    AlgorithmMode,
    AnswerSettings,
    ListenerSettings,
    MetricsSettings,
    PolicySettings,
    ResponseHeaders,
    StoreSettings,
)


def test_as_configured_is_the_mode_and_token_bucket_its_old_name() -> None:
    assert AlgorithmMode("as_configured") is AlgorithmMode.AS_CONFIGURED
    assert AlgorithmMode("token_bucket") is AlgorithmMode.AS_CONFIGURED
    assert [mode.value for mode in AlgorithmMode] == ["as_configured", "fixed_window"]
    with pytest.raises(ValueError, match="leaky"):
        AlgorithmMode("leaky")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ListenerSettings(grpc_port=-1), "listeners.grpc_port: must be a port"),
        (lambda: ListenerSettings(shutdown_grace_s=-1), "listeners.shutdown_grace_s: must be >= 0"),
        (lambda: PolicySettings(reload_interval_s=-1), "policy.reload_interval_s: must be >= 0"),
        (lambda: AnswerSettings(near_limit_ratio=1.5), "answers.near_limit_ratio: must lie in"),
        (lambda: StoreSettings(max_keys=0), "store.max_keys: must be >= 1"),
        (lambda: MetricsSettings(max_stats_keys=0), "metrics.max_stats_keys: must be >= 1"),
    ],
)
def test_each_section_checks_its_fields(build: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build()  # type: ignore[operator]
    assert message in str(caught.value)


def test_headers_are_named_only_when_enabled() -> None:
    assert ResponseHeaders().names is None
    assert ResponseHeaders(enabled=True, reset="X-Reset").names == (
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "X-Reset",
    )
