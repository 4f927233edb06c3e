"""Does a large report stall ``ShouldRateLimit``? RLS latency at rest and under 10,000-key reports.

One real ``ratekeeper serve`` process; in this process a thread sends back-to-back
``ReportRequest``s of ``--keys`` keys (pre-encoded, so the load costs this process little) while
the main thread times sequential ``ShouldRateLimit`` calls. The same calls are timed first with
no report in flight: the ratio of the two p99s is issue 15's item 4 (target ≤ 2).

    python -m bench.report_stalls --keys 10000 --calls 400
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import SERVICE
from ratekeeper.testing.server_process import ratekeeper_server

__all__ = ["STALL_CONFIG", "StallResult", "measure", "report_bytes"]

DOMAIN = "stall"
STALL_CONFIG = f"""\
domain: {DOMAIN}
descriptors:
  - key: user
    rate_limit: {{unit: second, requests_per_unit: 1000}}
"""


def report_bytes(keys: int, client_id: str = "stall-client", sequence: int = 0) -> bytes:
    """An encoded report of ``keys`` distinct configured keys, one admitted hit each."""
    request = pb.ReportRequest(client_id=client_id, interval_ns=100_000_000, sequence=sequence)
    for i in range(keys):
        key = request.keys.add(domain=DOMAIN, admitted=1)
        key.entries.add(key="user", value=f"u{i}")
    return request.SerializeToString()


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


@dataclass
class StallResult:
    """Seconds, except counts."""

    rest_p50: float
    rest_p99: float
    loaded_p50: float
    loaded_p99: float
    loaded_max: float
    reports: int
    report_p50: float
    report_max: float
    keys: int
    report_errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Loaded p99 over rest p99."""
        return self.loaded_p99 / self.rest_p99 if self.rest_p99 else float("inf")


class _Reporter(threading.Thread):
    """Sends the same report back to back until stopped, timing each."""

    def __init__(self, target: str, body: bytes) -> None:
        super().__init__(name="stall-reporter", daemon=True)
        self._channel = grpc.insecure_channel(target)
        self._call = self._channel.unary_unary(f"/{SERVICE}/Report")
        self._body = body
        self.stop = threading.Event()
        self.started_one = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                start = time.perf_counter()
                self.started_one.set()
                try:
                    self._call(self._body, timeout=30)
                except grpc.RpcError as exc:
                    self.errors.append(str(exc.code()))
                    continue
                self.latencies.append(time.perf_counter() - start)
        finally:
            self._channel.close()


def _rls_latencies(stub: rls_pb2_grpc.RateLimitServiceStub, calls: int) -> list[float]:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry
    out: list[float] = []
    for i in range(calls):
        descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry(key="user", value=f"r{i}")])
        request = rls_pb2.RateLimitRequest(domain=DOMAIN, descriptors=[descriptor])
        start = time.perf_counter()
        stub.ShouldRateLimit(request, timeout=30)
        out.append(time.perf_counter() - start)
        time.sleep(0.002)  # a paced caller, not a saturating one
    return out


def measure(target: str, keys: int = 10_000, calls: int = 400) -> StallResult:
    """RLS latencies at rest, then while ``keys``-key reports arrive back to back."""
    with grpc.insecure_channel(target) as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        _rls_latencies(stub, 50)  # warm up: channel, caches
        rest = _rls_latencies(stub, calls)
        reporter = _Reporter(target, report_bytes(keys))
        reporter.start()
        reporter.started_one.wait(30)
        try:
            loaded = _rls_latencies(stub, calls)
        finally:
            reporter.stop.set()
            reporter.join(60)
    done = reporter.latencies
    return StallResult(
        _p(rest, 0.5),
        _p(rest, 0.99),
        _p(loaded, 0.5),
        _p(loaded, 0.99),
        max(loaded),
        len(done),
        _p(done, 0.5),
        max(done, default=0.0),
        keys,
        sorted(set(reporter.errors)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_stalls")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config"
        config.mkdir()
        (config / "stall.yaml").write_text(STALL_CONFIG)
        with ratekeeper_server(config, Path(tmp) / "logs") as server:
            result = measure(server.grpc_target, args.keys, args.calls)
    print(json.dumps({**asdict(result), "ratio": round(result.ratio, 2)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
