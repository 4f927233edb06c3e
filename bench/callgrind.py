"""Instructions a benchmark's child process executes, counted by valgrind's callgrind.

The machine's cores are shared and noisy; an instruction count is the same on every run (the
hash seed fixed), so the instruction benchmarks (``bench.rls_instructions``,
``bench.report_apply --callgrind``) compare figures through it. :func:`per_function` says where
the instructions of a workload go: the self cost of each C function (the interpreter's, the
protobuf runtime's) between two runs that differ only in the work done, so start-up cancels.

    python -m bench.callgrind bench.report_apply "--child --wire compact --rounds 0" \\
        "--child --wire compact --rounds 20" --per 20000
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["instructions", "per_function"]

_COLLECTED = re.compile(rb"Collected : (\d+)")
_LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)$")


def _run(module: str, args: Sequence[str], timeout: float, out: str) -> bytes:
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
    argv += ["-m", module, *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, check=True)
    return done.stderr


def instructions(module: str, args: Sequence[str], timeout: float) -> int:
    """Instructions ``python -m module *args`` executes under callgrind (``PYTHONHASHSEED=0``)."""
    stderr = _run(module, args, timeout, "/dev/null")
    found = _COLLECTED.search(stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{stderr[-2000:]!r}")
    return int(found.group(1))


def _self_costs(module: str, args: Sequence[str], timeout: float) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "callgrind.out")
        _run(module, args, timeout, out)
        text = subprocess.run(
            ["callgrind_annotate", "--threshold=100", out],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    costs: dict[str, int] = {}
    for line in text.splitlines():
        found = _LINE.match(line)
        if found and "PROGRAM TOTALS" not in line:
            name = found.group(2).split(" [")[0].split(":", 1)[-1]
            costs[name] = costs.get(name, 0) + int(found.group(1).replace(",", ""))
    return costs


def per_function(
    module: str, base: Sequence[str], work: Sequence[str], timeout: float = 1800
) -> list[tuple[str, int]]:
    """Self instructions per C function that ``work`` executes beyond ``base``, largest first."""
    before, after = _self_costs(module, base, timeout), _self_costs(module, work, timeout)
    extra = {name: cost - before.get(name, 0) for name, cost in after.items()}
    return sorted(extra.items(), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.callgrind")
    parser.add_argument("module")
    parser.add_argument("base", help="the module's arguments for the baseline run, quoted")
    parser.add_argument("work", help="the module's arguments for the measured run, quoted")
    parser.add_argument("--per", type=int, default=1, help="divide by this many units of work")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    rows = per_function(args.module, shlex.split(args.base), shlex.split(args.work))
    total = sum(cost for _, cost in rows)
    print(f"{total / args.per:12,.0f}  total per unit")
    for name, cost in rows[: args.top]:
        print(f"{cost / args.per:12,.0f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
