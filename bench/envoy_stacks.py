"""The set-ups ``bench.envoy_bench`` compares, started from the files docs/envoy.md publishes.

One :class:`Stacks` starts, for one network model, every way Envoy can be rate limited here,
each behind its own Envoy on the same upstream (an Envoy answering 200 itself, so the upstream
adds as little latency and noise as possible):

* ``none``: Envoy with the ratelimit filter but no descriptors on the route (no RLS call);
* ``legacy``: ratelimit filter → ``ratekeeper serve`` on Redis, fixed window (the legacy corner:
  envoyproxy/ratelimit's design, a Redis round trip per call);
* ``memory``: ratelimit filter → ``ratekeeper serve`` in memory (a call per request);
* ``sidecar``: ratelimit filter → ``ratekeeper sidecar`` on a unix socket → ``ratekeeper serve``;
* ``rlqs``: the rate_limit_quota filter → ``ratekeeper serve`` (Envoy batch-reports itself), a
  server of its own: the sidecars report to the memory server even while idle, and that work
  would otherwise be counted as RLQS's.

With an emulated network, every hop that would cross hosts in production goes through a
``bench.sim.relay`` (Envoy → service, service → Redis, sidecar → service); the sidecar's own
socket and the upstream stay local, as they are beside an Envoy.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Final

import yaml

from bench.sim.relay import start_relay
from bench.sim.spec import NetworkModel
from ratekeeper.testing.envoy_guide import (
    ratelimit_config,
    rlqs_config,
    sidecar_process,
)
from ratekeeper.testing.envoy_proxy import Route, bootstrap, envoy_on_file
from ratekeeper.testing.procs import free_port
from ratekeeper.testing.redis_server import RedisServer
from ratekeeper.testing.server_process import ratekeeper_server

__all__ = [
    "GUIDE",
    "MODES",
    "SHARED_LIMIT",
    "Stacks",
    "none_config",
    "policy_yaml",
    "upstream_yaml",
]

REPO: Final = Path(__file__).resolve().parents[1]
GUIDE: Final = REPO / "docs" / "envoy"
MODES: Final = ("none", "legacy", "memory", "sidecar", "rlqs")
#: The one user with a tight limit (per second): the accuracy run's shared key.
SHARED_LIMIT: Final = 10
_LEGACY_FLAGS: Final = ("--algorithm", "fixed_window", "--redis-timeout", "1")


def policy_yaml() -> str:
    """examples/config/rl.yaml's shape: every user effectively unlimited (latency runs measure
    the path, not 429s), one user per shared-limit mode limited (the accuracy run: the sidecar
    and RLQS share the service, so each needs a counter of its own)."""
    return f"""\
domain: rl
descriptors:
  - key: route
    value: root
    descriptors:
      - key: user
        value: shared-sidecar
        rate_limit: {{unit: second, requests_per_unit: {SHARED_LIMIT}}}
      - key: user
        value: shared-rlqs
        rate_limit: {{unit: second, requests_per_unit: {SHARED_LIMIT}}}
      - key: user
        rate_limit: {{unit: second, requests_per_unit: 1000000}}
"""


def none_config(ports: dict[str, int]) -> str:
    """The ``none`` mode's Envoy on ``ports`` (listen, admin, upstream): the ratelimit filter
    with no descriptors on the route, so no rate limit call."""
    text = bootstrap(
        listen_port=ports["listen"],
        admin_port=ports["admin"],
        rls=free_port(),  # never called: the route has no descriptors
        upstream_port=ports["upstream"],
        domain="rl",
        routes=[Route("/")],
    )
    return yaml.safe_dump(text, sort_keys=False)


def upstream_yaml(port: int, admin: int) -> str:
    types = "type.googleapis.com/envoy.extensions.filters"
    manager = {
        "@type": f"{types}.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "upstream",
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}},
                        }
                    ],
                }
            ]
        },
        "http_filters": [
            {
                "name": "envoy.filters.http.router",
                "typed_config": {"@type": f"{types}.http.router.v3.Router"},
            }
        ],
    }
    listener = {
        "name": "upstream",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": manager,
                    }
                ]
            }
        ],
    }
    admin_address = {"socket_address": {"address": "127.0.0.1", "port_value": admin}}
    return yaml.safe_dump(
        {"admin": {"address": admin_address}, "static_resources": {"listeners": [listener]}}
    )


class Stacks:
    """Every mode's Envoy for one network model; a context manager stopping all it started.

    :attr:`ports` maps each mode to the Envoy listener to send requests to; :attr:`second`
    holds a second Envoy (with its own sidecar) for the shared-limit modes; :attr:`envoys` the
    process id of each mode's (first) Envoy; :attr:`deciders` the process id answering each
    mode's rate limit calls (legacy, memory, sidecar; for RLQS the server its stream goes to).
    :attr:`paths` holds, for each mode and for ``upstream`` (wrk straight to the upstream), the
    process ids a request or its rate limiting passes through (relays, Redis, the server a
    sidecar reports to included).
    """

    def __init__(self, network: NetworkModel, workdir: Path, seed: int = 1) -> None:
        self.network, self.workdir, self.seed = network, workdir, seed
        self.ports: dict[str, int] = {}
        self.second: dict[str, int] = {}
        self.envoys: dict[str, int] = {}
        self.deciders: dict[str, int] = {}
        self.paths: dict[str, frozenset[int]] = {}
        self.upstream_port = 0
        self._relays: dict[int, int] = {}
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> Stacks:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def _remote(self, port: int, name: str) -> int:
        """``port`` as a remote host sees it: through a relay when the network is emulated."""
        if not self.network.emulated:
            return port
        self.seed += 1
        relay, listening = start_relay(
            port, self.network, self.seed, name=name, log_dir=self.workdir, cwd=REPO
        )
        self._exit.callback(relay.stop)
        self._relays[listening] = relay.pid
        return listening

    def _via(self, *ports: int) -> set[int]:
        """The relays behind ``ports`` (none on loopback)."""
        return {self._relays[p] for p in ports if p in self._relays}

    def _envoy(self, config: str, ports: dict[str, int], name: str) -> int:
        proc = self._exit.enter_context(
            envoy_on_file(config, ports["listen"], ports["admin"], self.workdir, name)
        )
        mode = name.removeprefix("envoy-")
        if mode in MODES:  # the first of each mode's Envoys: the one the latency runs use
            self.envoys[mode] = proc.pid
        return ports["listen"]

    def _start(self) -> None:
        work, enter = self.workdir, self._exit.enter_context
        policy = work / "policy"
        policy.mkdir(exist_ok=True)
        (policy / "rl.yaml").write_text(policy_yaml())
        upstream, upstream_admin = free_port(), free_port()
        up = enter(
            envoy_on_file(
                upstream_yaml(upstream, upstream_admin), upstream, upstream_admin, work, "upstream"
            )
        ).pid
        self.upstream_port = upstream
        self.paths["upstream"] = frozenset({up})

        def ports() -> dict[str, int]:
            return {"listen": free_port(), "admin": free_port(), "upstream": upstream}

        none = ports()
        self.ports["none"] = self._envoy(none_config(none), none, "envoy-none")

        redis = RedisServer(work, name="redis")
        self._exit.callback(redis.stop)
        assert redis.process is not None
        redis_remote = self._remote(redis.port, "relay-redis")
        backend = f"redis://127.0.0.1:{redis_remote}/0"
        legacy = enter(
            ratekeeper_server(
                policy, work, name="legacy", flags=("--backend", backend, *_LEGACY_FLAGS)
            )
        )
        self.deciders["legacy"] = legacy.process.pid
        legacy_remote = self._remote(legacy.grpc_port, "relay-legacy")
        config = ports()
        self.ports["legacy"] = self._envoy(
            ratelimit_config(GUIDE / "ratelimit_sidecar.yaml", config, legacy_remote),
            config,
            "envoy-legacy",
        )
        legacy_path = {legacy.process.pid, redis.process.pid}
        self.paths["legacy"] = frozenset(legacy_path | self._via(redis_remote, legacy_remote))

        memory = enter(ratekeeper_server(policy, work, name="memory"))
        self.deciders["memory"] = memory.process.pid
        memory_remote = self._remote(memory.grpc_port, "relay-memory")
        config = ports()
        self.ports["memory"] = self._envoy(
            ratelimit_config(GUIDE / "ratelimit_sidecar.yaml", config, memory_remote),
            config,
            "envoy-memory",
        )
        memory_path = {memory.process.pid} | self._via(memory_remote)
        self.paths["memory"] = frozenset(memory_path)

        rlqs = enter(ratekeeper_server(policy, work, name="rlqs"))
        self.deciders["rlqs"] = rlqs.process.pid
        rlqs_remote = self._remote(rlqs.grpc_port, "relay-rlqs")
        for index, into in enumerate((self.ports, self.second)):
            sidecar = enter(
                sidecar_process(f"127.0.0.1:{memory_remote}", policy, work, f"sidecar{index}")
            )
            if index == 0:
                self.deciders["sidecar"] = sidecar.pid
                # Its reports go to the memory server: that work is the sidecar path's.
                self.paths["sidecar"] = frozenset({sidecar.pid, *memory_path})
            config = ports()
            into["sidecar"] = self._envoy(
                ratelimit_config(GUIDE / "ratelimit_sidecar.yaml", config, sidecar.socket),
                config,
                "envoy-sidecar" if index == 0 else f"envoy-sidecar{index}",
            )
            config = {**ports(), "ratekeeper": rlqs_remote}
            into["rlqs"] = self._envoy(
                rlqs_config(GUIDE / "rate_limit_quota.yaml", config),
                config,
                "envoy-rlqs" if index == 0 else f"envoy-rlqs{index}",
            )
        self.paths["rlqs"] = frozenset({rlqs.process.pid} | self._via(rlqs_remote))
        for mode, envoy in self.envoys.items():  # each path starts at its Envoy, ends upstream
            self.paths[mode] = self.paths.get(mode, frozenset()) | {envoy, up}
