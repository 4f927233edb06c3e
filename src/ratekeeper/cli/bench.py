"""``ratekeeper bench``: the side-by-side traffic simulator, run as ``python -m bench``.

The simulator is the source checkout's ``bench/`` package, beside ``src/``; it is not shipped in
the wheel (a top-level ``bench`` package in site-packages would claim a generic name, and carry
matplotlib-sized extras into every install). So this command runs ``python -m bench`` in a child
interpreter that finds the checkout through ``PYTHONPATH`` (as ``make bench`` finds it through
its working directory), with the caller's arguments, working directory and exit code: relative
paths such as ``--out`` mean what they meant to the caller. Without a checkout (a plain wheel
install) it says so and exits 2. Nothing edits this interpreter's ``sys.path``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["PROG_VARIABLE", "add_parser", "checkout"]

#: The variable that tells the simulator what to call itself in ``--help`` and its report.
PROG_VARIABLE = "RATEKEEPER_BENCH_PROG"


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run the side-by-side traffic simulator (A legacy, B sync, C batch reporting)",
        description="Run the side-by-side traffic simulator of a source checkout (python -m "
        "bench); every argument, --help included, is the simulator's.",
        # Every argument, --help included, belongs to the simulator's own parser: with no
        # option prefix of its own this subparser passes them all through untouched.
        add_help=False,
        prefix_chars="+",
    )
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_bench)


def checkout() -> Path | None:
    """The source checkout holding ``bench/`` (an editable install's ``src/..``), if any."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "bench" / "__main__.py").is_file() else None


def _bench(args: argparse.Namespace) -> int:
    root = checkout()
    if root is None:
        print(
            "ratekeeper bench: the simulator runs from a source checkout (bench/ beside src/); "
            "this install has none: clone the repository and pip install -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, PROG_VARIABLE: "ratekeeper bench"}
    child = subprocess.Popen([sys.executable, "-m", "bench", *args.args], env=env)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            # The child had the same SIGINT: wait while it stops the processes it started.
            continue
