"""The fuzz targets: arbitrary bytes into the three parsers that face untrusted input.

Each target takes one input and returns normally when the input was answered or refused with
the error the edge maps to a clear status (``RequestError``: INVALID_ARGUMENT / 400;
``ConfigError``: a message naming the file); anything else escapes as the bug it is. Targets
keep their state bounded (checked by :meth:`Target.check_bounded`), so a long run also shows
memory does not grow with the inputs. Used by ``test_fuzz.py`` (hypothesis) and ``atheris_main``
(coverage-guided, when atheris is installed).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from envoy.service.ratelimit.v3 import rls_pb2
from google.protobuf.message import DecodeError

from ratekeeper.config import LoadBounds, load_config
from ratekeeper.errors import ConfigError, RequestError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import answer_to_wire, report_from_wire
from ratekeeper.server.app import build
from ratekeeper.server.components import Components
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings

#: A policy with every kind of rule the planner treats differently.
CONFIG = """
domain: rl
descriptors:
  - key: remote_address
    rate_limit: {unit: second, requests_per_unit: 10}
  - key: path
    value: /static/*
    detailed_metric: true
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: tier
    value: free
    descriptors:
      - key: user
        rate_limit: {unit: hour, requests_per_unit: 100, name: base}
  - key: open
    rate_limit: {unlimited: true}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: second, requests_per_unit: 1}
"""
T0 = 1_700_000_000 * 10**9
#: Most counters a fuzzing run may leave in the store (the store's own cap).
MAX_KEYS = 5_000


class Target:
    """A server's decision and report logic, built once, fed one input at a time."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="ratekeeper-fuzz-"))
        (self._dir / "rl.yaml").write_text(CONFIG)
        settings = with_options(
            ServerSettings(),
            grpc_port=0,
            http_port=0,
            config=str(self._dir),
            max_keys=MAX_KEYS,
            max_stats_keys=100,
        )
        self.components: Components = build(settings, clock=lambda: self.now)
        self.loop = asyncio.new_event_loop()
        self.now = T0
        self.inputs = 0

    def rls(self, data: bytes) -> None:
        """``ShouldRateLimit`` bytes as the servicer hands them to the decider."""
        self._tick()
        try:
            answer = self.loop.run_until_complete(self.components.decider.answer(data, self.now))
        except RequestError:
            return
        response = rls_pb2.RateLimitResponse.FromString(answer)  # always a valid answer
        assert response.overall_code in (1, 2), response

    def report(self, data: bytes) -> None:
        """``Report`` bytes as the report handler decodes and applies them."""
        self._tick()
        try:
            request = pb.ReportRequest.FromString(data)
        except DecodeError:
            return  # answered INVALID_ARGUMENT "not a ReportRequest"
        try:
            answer = self.loop.run_until_complete(
                self.components.reports.process(report_from_wire(request), self.now)
            )
        except RequestError:
            return
        response = answer_to_wire(answer)
        assert len(response.instructions) == len(request.keys)

    def config(self, data: bytes) -> None:
        """A policy file's bytes through the bounded loader."""
        self._tick()
        file = self._dir / "fuzz" / "input.yaml"
        file.parent.mkdir(exist_ok=True)
        file.write_bytes(data)
        try:
            load_config(file, bounds=LoadBounds(max_bytes=64 * 1024))
        except ConfigError as exc:
            if not str(exc):
                raise AssertionError("a config refusal must say why") from exc

    def _tick(self) -> None:
        self.inputs += 1
        self.now += 1_000_000  # 1 ms per input: buckets refill, demand and hot keys expire

    def check_bounded(self) -> None:
        """Nothing a run fed in is kept beyond its bounds."""
        store = self.components.store
        assert len(store) <= MAX_KEYS + 64, len(store)  # type: ignore[arg-type]
        plans = self.components.decider._plan_cache
        assert len(plans) <= 16_384

    def close(self) -> None:
        self.loop.close()


#: Seeds: one well-formed input per target, so mutations start near the valid space.
SEEDS: dict[str, list[bytes]] = {
    "rls": [
        rls_pb2.RateLimitRequest(
            domain="rl",
            descriptors=[
                {"entries": [{"key": "remote_address", "value": "10.0.0.1"}]},
                {"entries": [{"key": "tier", "value": "free"}, {"key": "user", "value": "u"}]},
                {"entries": [{"key": "path", "value": "/static/a"}], "hits_addend": {"value": 3}},
            ],
            hits_addend=2,
        ).SerializeToString()
    ],
    "report": [
        pb.ReportRequest(
            client_id="fuzz",
            sequence=1,
            interval_ns=100_000_000,
            keys=[
                pb.KeyReport(
                    domain="rl",
                    entries=[pb.Entry(key="remote_address", value="10.0.0.1")],
                    admitted=5,
                    rejected=1,
                ),
                pb.KeyReport(
                    domain="inline",
                    entries=[pb.Entry(key="k", value="v")],
                    admitted=2,
                    limits=[pb.LimitSpec(amount=10, unit_seconds=1, multiplier=1)],
                ),
            ],
        ).SerializeToString()
    ],
    "config": [CONFIG.encode(), b"a: &a [*a, *a]\n", b"domain: x\ndescriptors: [{key: k}]\n"],
}
