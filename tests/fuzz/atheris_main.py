"""Coverage-guided fuzzing of one target with atheris: ``python -m tests.fuzz.atheris_main
TARGET [libFuzzer flags]`` (``-runs=N``, ``-max_total_time=S``, ``-rss_limit_mb=M``).

libFuzzer ends the process with a non-zero status on an escaped exception (a crash, with the
input saved under ``-artifact_prefix``) or when RSS passes ``-rss_limit_mb``.
"""

from __future__ import annotations

import sys

import aiohttp  # noqa: F401  (dependencies load uninstrumented: only ratekeeper is traced)
import atheris
import grpc  # noqa: F401
import yaml  # noqa: F401
from envoy.service.ratelimit.v3 import rls_pb2  # noqa: F401
from google.protobuf import json_format  # noqa: F401

with atheris.instrument_imports(include=["ratekeeper"]):
    from tests.fuzz.targets import Target


def main() -> None:
    name, flags = sys.argv[1], sys.argv[2:]
    target = Target()
    one = getattr(target, name)

    def test_one_input(data: bytes) -> None:
        one(data)
        if target.inputs % 1000 == 0:
            target.check_bounded()

    atheris.Setup([sys.argv[0], *flags], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
