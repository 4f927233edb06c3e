"""Envoy's bootstrap as the helper builds it: where the RLS is, what each route sends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ratekeeper.testing.envoy_proxy import Route, bootstrap, upstream_http
from ratekeeper.testing.procs import http_get

ACTION = {"generic_key": {"descriptor_key": "route", "descriptor_value": "a"}}


def _config(rls: int | Path) -> dict[str, Any]:
    routes = [Route("/a", [[ACTION]]), Route("/")]
    return bootstrap(
        listen_port=1, admin_port=2, rls=rls, upstream_port=3, domain="edge", routes=routes
    )


def _rls_address(config: dict[str, Any]) -> dict[str, Any]:
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    endpoint = clusters["ratelimit"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    address: dict[str, Any] = endpoint["endpoint"]["address"]
    return address


def test_the_rls_is_a_loopback_port_or_a_unix_socket(tmp_path: Path) -> None:
    assert _rls_address(_config(9)) == {"socket_address": {"address": "127.0.0.1", "port_value": 9}}
    assert _rls_address(_config(tmp_path / "rls.sock")) == {
        "pipe": {"path": str(tmp_path / "rls.sock")}
    }


def test_each_route_sends_its_own_descriptors() -> None:
    listener = _config(9)["static_resources"]["listeners"][0]
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert [r["match"]["prefix"] for r in routes] == ["/a", "/"]
    assert routes[0]["route"]["rate_limits"] == [{"actions": [ACTION]}]
    assert routes[1]["route"]["rate_limits"] == []


def test_the_upstream_answers_every_get() -> None:
    with upstream_http() as port:
        status, _, body = http_get(port, "/anything")
    assert (status, body) == (200, b"upstream ok\n")
