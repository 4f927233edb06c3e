"""Instructions Envoy executes per request in each mode, counted by callgrind.

Envoy's CPU time per request moves by half from one run to the next on the shared two-core
machine; its instruction count does not. Each mode's Envoy (the guide's file, as
``bench.envoy_bench`` runs it) is started under valgrind's callgrind with instrumentation off,
warmed with ``--warm`` requests, then counted over ``--requests`` requests sent one at a time
(``GET /`` with the benchmark's 100 rotating users): start-up and warm-up are not counted. The
count covers every Envoy thread over that window, its main thread's timers included.

Modes: ``none`` (no rate limit call), ``sidecar`` (ratelimit filter → ``ratekeeper sidecar`` on
a unix socket), ``memory`` (ratelimit filter → ``ratekeeper serve`` over TCP), ``rlqs`` (the
rate_limit_quota filter → ``ratekeeper serve``), and ``rlqs-tree`` / ``rlqs-no-match``: the RLQS
file with its bucket matcher written two other ways (a ``prefix_match_map`` on ``x-user`` with
the empty prefix; no predicate, the action as ``on_no_match``; each allows and does not report
a request without ``x-user``), to see what the matcher costs.

    python -m bench.envoy_instructions                    # needs valgrind; ~3 min
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.envoy_stacks import GUIDE, none_config, policy_yaml, upstream_yaml
from ratekeeper.testing.envoy_guide import ratelimit_config, rlqs_config, sidecar_process
from ratekeeper.testing.envoy_proxy import envoy_binary, envoy_on_file
from ratekeeper.testing.procs import free_port
from ratekeeper.testing.server_process import ratekeeper_server

__all__ = ["MODES", "main"]

MODES = ("none", "sidecar", "memory", "rlqs", "rlqs-tree", "rlqs-no-match")
_COLLECTED = re.compile(r"Collected : (\d+)")


def _matcher(text: str, shape: str) -> str:
    """The RLQS guide file with its one bucket matcher written as ``shape``."""
    config: Any = yaml.safe_load(text)
    manager = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    quota = manager["typed_config"]["http_filters"][0]["typed_config"]
    (matcher,) = quota["bucket_matchers"]["matcher_list"]["matchers"]
    on_match, header = matcher["on_match"], matcher["predicate"]["single_predicate"]["input"]
    if shape == "tree":
        tree = {"input": header, "prefix_match_map": {"map": {"": on_match}}}
        quota["bucket_matchers"] = {"matcher_tree": tree}
    else:
        quota["bucket_matchers"] = {"on_no_match": on_match}
    return yaml.safe_dump(config, sort_keys=False)


def _ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Envoy under valgrind not ready on admin port {port}")


def counted(config: str, ports: dict[str, int], workdir: Path, warm: int, requests: int) -> int:
    """Instructions Envoy on ``config`` executes over ``requests`` requests, after ``warm``."""
    path = workdir / f"envoy-{ports['listen']}.yaml"
    path.write_text(config)
    log = workdir / f"envoy-{ports['listen']}.callgrind.log"
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null"]
    argv += [envoy_binary(), "-c", str(path), "--base-id", str(ports["admin"])]
    argv += ["--concurrency", "1", "-l", "error"]
    with log.open("w") as err:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=err)
    try:
        _ready(ports["admin"], time.monotonic() + 300)
        connection = http.client.HTTPConnection("127.0.0.1", ports["listen"], timeout=60)

        def send(count: int) -> None:
            for i in range(count):
                connection.request("GET", "/", headers={"x-user": f"u{i % 100}"})
                connection.getresponse().read()

        send(warm)
        control = ["callgrind_control", "--instr=on", str(proc.pid)]
        subprocess.run(control, capture_output=True, check=True, cwd=workdir)
        send(requests)
        control[1] = "--instr=off"
        subprocess.run(control, capture_output=True, check=True, cwd=workdir)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    found = _COLLECTED.findall(log.read_text())
    if not found:
        raise RuntimeError(f"no instruction count from callgrind in {log}")
    return int(found[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.envoy_instructions", description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="envoy-instructions-") as tmp,
        contextlib.ExitStack() as on_exit,
    ):
        work = Path(tmp)
        policy = work / "policy"
        policy.mkdir()
        (policy / "rl.yaml").write_text(policy_yaml())
        upstream, upstream_admin = free_port(), free_port()
        upstream_config = upstream_yaml(upstream, upstream_admin)
        on_exit.enter_context(envoy_on_file(upstream_config, upstream, upstream_admin, work, "up"))
        server = on_exit.enter_context(ratekeeper_server(policy, work, name="memory"))
        sidecar = on_exit.enter_context(
            sidecar_process(f"127.0.0.1:{server.grpc_port}", policy, work, "sidecar")
        )
        ratelimit = GUIDE / "ratelimit_sidecar.yaml"
        quota = GUIDE / "rate_limit_quota.yaml"
        configs: dict[str, Callable[[dict[str, int]], str]] = {
            "none": none_config,
            "sidecar": lambda p: ratelimit_config(ratelimit, p, sidecar.socket),
            "memory": lambda p: ratelimit_config(ratelimit, p, server.grpc_port),
            "rlqs": lambda p: rlqs_config(quota, p),
            "rlqs-tree": lambda p: _matcher(rlqs_config(quota, p), "tree"),
            "rlqs-no-match": lambda p: _matcher(rlqs_config(quota, p), "no-match"),
        }
        results: dict[str, float] = {}
        for mode in args.modes.split(","):
            ports = {"listen": free_port(), "admin": free_port(), "upstream": upstream}
            ports["ratekeeper"] = server.grpc_port
            total = counted(configs[mode](ports), ports, work, args.warm, args.requests)
            results[mode] = total / args.requests
            print(f"{mode}: {results[mode]:,.0f} instructions per request", flush=True)
    base = results.get("none")
    print("\n| mode | Envoy instructions per request | vs none |\n|---|--:|--:|")
    for mode, count in results.items():
        ratio = f"{count / base:.3f}×" if base else "—"
        print(f"| {mode} | {count:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
