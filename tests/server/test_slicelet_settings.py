"""Cluster settings of ``ratekeeper serve``: flags, variables, checks, the advertised name."""

from __future__ import annotations

import pytest

from ratekeeper.errors import ConfigError
from ratekeeper.server.options import from_sources
from ratekeeper.server.settings import ClusterSettings, ListenerSettings
from ratekeeper.server.slicelet import advertised


def test_join_may_list_several_addresses_tried_in_turn() -> None:
    cluster = from_sources({"join": "a1:7000, a2:7000,m1:8081"}, {}).cluster
    assert cluster.join_targets == ("a1:7000", "a2:7000", "m1:8081")
    assert ClusterSettings().join_targets == ()


def test_a_server_alone_is_not_a_member() -> None:
    cluster = from_sources({}, {}).cluster
    assert not cluster.enabled
    assert cluster == ClusterSettings()


def test_join_advertise_and_the_embedded_assigner_come_from_flags_and_variables() -> None:
    env = {"RATEKEEPER_JOIN": "10.0.0.1:8081", "RATEKEEPER_UNHEALTHY_AFTER": "5"}
    cluster = from_sources({"advertise": "rk-2:8081", "drain_timeout": "3"}, env).cluster
    assert cluster.enabled
    assert (cluster.join, cluster.advertise, cluster.drain_timeout_s) == (
        "10.0.0.1:8081",
        "rk-2:8081",
        3.0,
    )
    assert cluster.assigner.unhealthy_after_s == 5.0
    embedded = from_sources({"assigner_embedded": "true", "heartbeat_interval": "0.5"}, {})
    assert embedded.cluster.enabled
    assert embedded.cluster.assigner.heartbeat_interval_s == 0.5


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"join": "nohost"}, {}, "--join.*no host or no port"),
        ({}, {"RATEKEEPER_ADVERTISE": "a b:1"}, "RATEKEEPER_ADVERTISE.*spaces"),
        ({"join": "a:1", "assigner_embedded": "true"}, {}, "--join.*joins nobody"),
        ({"join_retry_max": "0.01"}, {}, "--join-retry-max.*retry_initial"),
        ({"heartbeat_timeout": "0"}, {}, "--heartbeat-timeout.*> 0"),
        ({"unhealthy_after": "0.5"}, {}, "cluster.assigner.*unhealthy_after"),
    ],
)
def test_bad_cluster_values_are_refused_naming_their_source(
    flags: dict[str, str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        from_sources(flags, env)


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", "127.0.0.1:8081"), ("::1", "[::1]:8081"), ("rk.internal", "rk.internal:8081")],
)
def test_the_advertised_name_defaults_to_the_grpc_listen_address(host: str, expected: str) -> None:
    assert advertised(ClusterSettings(), ListenerSettings(host=host), 8081) == expected


def test_a_wildcard_host_advertises_the_machines_name_and_advertise_wins() -> None:
    name = advertised(ClusterSettings(), ListenerSettings(host="0.0.0.0"), 8081)
    assert not name.startswith("0.0.0.0")
    assert name.endswith(":8081")
    chosen = ClusterSettings(join="a:1", advertise="rk-1:9000")
    assert advertised(chosen, ListenerSettings(host="0.0.0.0"), 8081) == "rk-1:9000"
