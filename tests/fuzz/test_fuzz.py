"""Fuzzing in the test suite (issue 16 item 7): the RLS bytes path, the Report decoder and the
config loader get arbitrary and mutated bytes; each input must be answered or refused with a
clear error, never crash the server or grow its memory.

Three layers, each short in ``make test`` and long with ``RATEKEEPER_FUZZ_LONG=1``:

* hypothesis over each target in process (:mod:`tests.fuzz.targets`);
* atheris (coverage-guided libFuzzer, when installed) over each target in a child process, with
  libFuzzer's RSS limit: a crash or an RSS past the limit fails the run;
* a live server on loopback fed mutated bytes over gRPC: every answer is OK or
  INVALID_ARGUMENT (never UNKNOWN or INTERNAL), and the server still serves afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from pathlib import Path

import grpc
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import SEEDS, Target
from tests.server.conftest import Start, descriptor

#: The long run, for a nightly job or by hand.
LONG = os.environ.get("RATEKEEPER_FUZZ_LONG", "") not in ("", "0")
EXAMPLES = 20_000 if LONG else 300
ATHERIS_SECONDS = 300 if LONG else 5
LIVE_INPUTS = 20_000 if LONG else 600
ROOT = Path(__file__).resolve().parents[2]


def _mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with a few bytes replaced, inserted or deleted: inputs near the valid space."""
    edits = st.lists(
        st.tuples(st.sampled_from("rid"), st.integers(0, max(0, len(seed))), st.integers(0, 255)),
        max_size=8,
    )

    def apply(changes: list[tuple[str, int, int]]) -> bytes:
        data = bytearray(seed)
        for kind, at, byte in changes:
            at = min(at, len(data))
            if kind == "i" or not data:
                data.insert(at, byte)
            elif kind == "r":
                data[min(at, len(data) - 1)] = byte
            else:
                del data[min(at, len(data) - 1)]
        return bytes(data)

    return edits.map(apply)


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    near = st.sampled_from(SEEDS[name]).flatmap(_mutated)
    return st.one_of(st.binary(max_size=2048), near)


@pytest.fixture(scope="module")
def target() -> Target:
    made = Target()
    yield made  # type: ignore[misc]
    made.check_bounded()
    made.close()


_FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not LONG,
)


@_FUZZ
@given(data=_inputs("rls"))
def test_rls_bytes_are_answered_or_refused(target: Target, data: bytes) -> None:
    target.rls(data)


@_FUZZ
@given(data=_inputs("report"))
def test_report_bytes_are_answered_or_refused(target: Target, data: bytes) -> None:
    target.report(data)


@_FUZZ
@given(data=_inputs("config"))
def test_config_bytes_are_loaded_or_refused_with_a_reason(target: Target, data: bytes) -> None:
    target.config(data)


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
@pytest.mark.parametrize("name", ["rls", "report", "config"])
@pytest.mark.timeout(ATHERIS_SECONDS + 120)
def test_atheris_finds_no_crash_and_no_memory_growth(name: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for n, seed in enumerate(SEEDS[name]):
        (corpus / f"seed{n}").write_bytes(seed)
    argv = [sys.executable, "-m", "tests.fuzz.atheris_main", name, str(corpus)]
    argv += [f"-max_total_time={ATHERIS_SECONDS}", "-max_len=4096", "-rss_limit_mb=1024"]
    argv += [f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    tail = "\n".join(run.stderr.splitlines()[-40:])
    assert run.returncode == 0, tail
    assert "stat::number_of_executed_units" in run.stderr, tail


def _mutations(seeds: list[bytes], count: int, rng: random.Random) -> list[bytes]:
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 6)):
            at = rng.randrange(len(data) + 1)
            roll = rng.random()
            if roll < 0.4 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif roll < 0.7:
                data[at:at] = rng.randbytes(rng.randint(1, 8))
            elif data:
                del data[min(at, len(data) - 1) : at + rng.randint(1, 8)]
        out.append(bytes(data) if rng.random() < 0.9 else rng.randbytes(rng.randint(0, 512)))
    return out


async def test_a_live_server_answers_every_mutated_call_with_ok_or_invalid_argument(
    serve: Start,
) -> None:
    from tests.fuzz.targets import CONFIG

    running = await serve(CONFIG)
    rng = random.Random(16)
    identity = lambda data: data  # noqa: E731 (raw bytes both ways)
    calls = {
        "rls": running.channel.unary_unary(
            "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
            request_serializer=identity,
            response_deserializer=identity,
        ),
        "report": running.channel.unary_unary(
            "/ratekeeper.v1.ReportService/Report",
            request_serializer=identity,
            response_deserializer=identity,
        ),
    }
    codes: dict[grpc.StatusCode, int] = {}
    rss_before = psutil.Process().memory_info().rss
    for name, call in calls.items():
        for data in _mutations(SEEDS[name], LIVE_INPUTS // 2, rng):
            try:
                await call(data, timeout=10)
                code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
            codes[code] = codes.get(code, 0) + 1
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}, codes
    assert (
        codes.get(grpc.StatusCode.OK, 0) > 0
    )  # the mutations reach the logic, not only the decoder
    grown = psutil.Process().memory_info().rss - rss_before
    assert grown < 100 * 2**20, f"RSS grew {grown / 2**20:.0f} MB"
    answer = await running.ask("rl", descriptor(("remote_address", "10.9.9.9")))
    assert answer.overall_code == 1  # still serving
