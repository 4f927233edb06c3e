"""Client CPU per key to build a report (issue 15, item 3: the reporter must not steal the
request path's CPU).

A ``LimiterMachine`` (what every ``ratekeeper.Limiter`` runs) tracks ``--keys`` keys on one
server; each round every key gets a hit, then ``collect`` builds the report and a canned
answer is applied (``answered``), as the reporter thread does each cycle. Timed apart, with
``time.process_time``: building (``collect``), the answer (``answered``), and the request's
encoding (``SerializeToString``, done by gRPC on the reporter thread). The hits themselves are
the request path's, not counted.

    python -m bench.report_build [--wire compact] [--keys 1000] [--rounds 50]
"""

from __future__ import annotations

import argparse
import json
import time

from ratekeeper.client.machine import LimiterMachine
from ratekeeper.client.options import LimiterOptions
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb

__all__ = ["build_cost", "main"]

_MS = 1_000_000


def _answer(request: pb.ReportRequest) -> pb.ReportResponse:
    """What a server answers an unlimited key: admit, for three intervals; known keys left out."""
    instruction = pb.KeyInstruction(valid_for_ns=300 * _MS)
    return pb.ReportResponse(instructions=[instruction] * len(request.keys), valid_for_ns=300 * _MS)


def build_cost(keys: int, rounds: int, wire: str) -> dict[str, float]:
    """µs per key of building, answering and encoding, over ``rounds`` warm rounds."""
    options = LimiterOptions(domain="bench", limit="1000/s", compact_reports=wire == "compact")
    machine = LimiterMachine("server:1", options)
    names = [f"user-{i}" for i in range(keys)]
    now = 1_000 * 1_000_000_000
    build = answer = encode = 0.0
    for r in range(rounds + 2):
        now += 100 * _MS
        for name in names:
            machine.decide(name, 1, now)
        t0 = time.process_time()
        (out,) = machine.collect(now)
        t1 = time.process_time()
        out.request.SerializeToString()
        t2 = time.process_time()
        machine.answered(out.address, _answer(out.request), now)
        t3 = time.process_time()
        if r >= 2:  # the first two rounds intern the keys (compact) and warm up
            build, encode, answer = build + t1 - t0, encode + t2 - t1, answer + t3 - t2
    per = 1e6 / (keys * rounds)
    return {
        "build_us_per_key": build * per,
        "encode_us_per_key": encode * per,
        "answer_us_per_key": answer * per,
        "total_us_per_key": (build + encode + answer) * per,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_build")
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--wire", choices=("full", "compact"), default="full")
    args = parser.parse_args(argv)
    result = build_cost(args.keys, args.rounds, args.wire)
    print(json.dumps({"wire": args.wire, **{k: round(v, 3) for k, v in result.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
