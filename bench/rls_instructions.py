"""Instructions per ``ShouldRateLimit`` handler call, counted by callgrind.

The benchmark machine's two cores are shared and noisy: CPU time per call moves by a third from
one run to the next, which hides a change of a few per cent. valgrind's callgrind counts the
instructions a process executes, the same on every run with a fixed hash seed. Each figure is
``(I(N calls) - I(0 calls)) / N``, so start-up and warm-up cancel out. The handlers are called
as gRPC would call them (``bench.rls_handler``): the no-op parses the request and serializes
its answer; ratekeeper's servicer takes and returns bytes.

Variants:

* ``no-op``: the generated-stub servicer;
* ``ratekeeper, seen before``: the benchmark's 1 000 keys, each request's plan cached;
* ``ratekeeper, first sight``: every request a key the server has never seen (parse, match,
  plan, a new counter): what a key space wider than the plan cache costs.

The server's clock advances 1/6 000 s per call, the end-to-end benchmark's rate, rather than
with the wall clock: under valgrind a call takes ~50 times longer, and the memory store's
housekeeping, which runs by the clock, would otherwise be counted ~50 times too often per call.

    python -m bench.rls_instructions        # needs valgrind (apt install valgrind); ~6 min
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import sys

from bench.callgrind import instructions
from bench.rls_handler import serialized, servicers
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.server.app import settle_gc

__all__ = ["VARIANTS", "instructions_per_call", "main", "run_calls"]

#: Variant → (handler, whether each measured request is new).
VARIANTS = {
    "no-op": ("no-op", False),
    "ratekeeper, seen before": ("ratekeeper", False),
    "ratekeeper, first sight": ("ratekeeper", True),
}
_WARM = 1000
#: The servers' clock: a fixed start, and the end-to-end benchmark's call rate (see above).
_START_NS = 1_763_700_000 * NS_PER_SECOND
_NS_PER_CALL = NS_PER_SECOND // 6000
_MAX_CALLS = 20_000


async def run_calls(variant: str, calls: int) -> None:
    """Warm ``variant`` up, then make ``calls`` calls: what runs under callgrind.

    Everything built before the calls is the same whatever ``calls`` is, so that it cancels out.
    """
    if calls > _MAX_CALLS:
        raise ValueError(f"at most {_MAX_CALLS} calls")
    name, new_keys = VARIANTS[variant]
    call, servicer = servicers(itertools.count(_START_NS, _NS_PER_CALL).__next__)[name]
    distinct = serialized(_MAX_CALLS + _WARM)[: _MAX_CALLS + _WARM]
    usual = serialized(_WARM)  # the end-to-end benchmark's traffic: 1 000 keys, some hot
    settle_gc()  # the collector as ``ratekeeper serve`` sets it once started
    # First sight: warm on keys of their own, then call with keys never seen. Seen before: warm
    # with one pass of the usual traffic, then call with it again.
    warm = distinct[_MAX_CALLS:] if new_keys else usual
    for request in warm:
        await call(servicer, request)
    for i in range(calls):
        await call(servicer, distinct[i] if new_keys else usual[i % len(usual)])


def _instructions(variant: str, calls: int) -> int:
    return instructions("bench.rls_instructions", ["--child", variant, "--calls", str(calls)], 900)


def instructions_per_call(variant: str, calls: int = 10_000) -> float:
    """Instructions one call of ``variant`` executes, start-up and warm-up subtracted."""
    return (_instructions(variant, calls) - _instructions(variant, 0)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000, help="measured calls per variant")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(run_calls(args.child, args.calls))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    counts = {variant: instructions_per_call(variant, args.calls) for variant in VARIANTS}
    base = counts["no-op"]
    print("| handler | instructions per call | vs no-op |\n|---|---|---|")
    for variant, count in counts.items():
        print(f"| {variant} | {count:,.0f} | {count / base:.2f} |")


if __name__ == "__main__":
    main()
