"""``allow()`` of two checkouts of the client in one process, interleaved round by round.

A change must keep the decision path within 5% of main's; separate runs on a shared machine
differ by more than that, so this loads the other tree's package under another name (a copy with
its imports rewritten) next to this one and times both on one always-admitted key, alternating
which goes first. Each round's ratio is taken within the round; the median ratio is the figure.

    python -m bench.client_ab /work/main/src            # 41 rounds of 100k calls
    python -m bench.client_ab /work/main/src --rounds 61
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ratekeeper

HUGE = 1_000_000_000
ALIAS = "ratekeeper_base"


def load_other(src: Path, into: Path) -> Any:
    """``src``'s ratekeeper package, copied into ``into`` as :data:`ALIAS` and imported."""
    target = into / ALIAS
    shutil.copytree(src / "ratekeeper", target)
    pattern = re.compile(r"\b(from|import) ratekeeper\b")
    for path in target.rglob("*.py"):
        path.write_text(pattern.sub(rf"\1 {ALIAS}", path.read_text()))
    # a package found by location: its submodules resolve through its __path__
    spec = importlib.util.spec_from_file_location(
        ALIAS, target / "__init__.py", submodule_search_locations=[str(target)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[ALIAS] = module
    spec.loader.exec_module(module)
    return module


def per_call_ns(fn: Callable[[str], object], calls: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn("k")
    return (time.perf_counter_ns() - t0) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the other checkout's src/ directory")
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        other = load_other(args.base, Path(tmp))
        base = other.Limiter("127.0.0.1:9", limit=f"{HUGE}/s", report_interval=0.1)
        this = ratekeeper.Limiter("127.0.0.1:9", limit=f"{HUGE}/s", report_interval=0.1)
        times: dict[str, list[float]] = {"base": [], "this": []}
        for i in range(args.rounds):
            order = [("base", base), ("this", this)]
            for name, lim in order if i % 2 == 0 else order[::-1]:
                times[name].append(per_call_ns(lim.allow, args.calls))
        base.close()
        this.close()
    ratios = [t / b for t, b in zip(times["this"], times["base"], strict=True)]
    print(f"{args.rounds} interleaved rounds of {args.calls:,} allow() calls")
    print("| tree | median ns | best ns |")
    print("|---|---:|---:|")
    for name in ("base", "this"):
        print(f"| {name} | {statistics.median(times[name]):.1f} | {min(times[name]):.1f} |")
    print(f"this/base: median of per-round ratios {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
