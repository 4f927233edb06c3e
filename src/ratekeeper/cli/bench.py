"""``ratekeeper bench``: the side-by-side traffic simulator (``python -m bench``).

The simulator lives in the source checkout's ``bench/`` package, beside ``src/``, and needs the
``bench`` extra (matplotlib, rich); both are imported only when the command runs, so the
installed package works without them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run the side-by-side traffic simulator (A legacy, B sync, C batch reporting)",
        description=__doc__,
        # Every argument, --help included, belongs to the simulator's own parser: with no
        # option prefix of its own this subparser passes them all through untouched.
        add_help=False,
        prefix_chars="+",
    )
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_bench)


def _checkout() -> Path:
    """The source checkout holding ``bench/`` (an editable install's ``src/..``)."""
    return Path(__file__).resolve().parents[3]


def _bench(args: argparse.Namespace) -> int:
    root = str(_checkout())
    if root not in sys.path:
        sys.path.insert(0, root)  # a console script does not put the checkout on sys.path
    try:
        cli = importlib.import_module("bench.sim.cli")
    except ImportError as exc:
        print(
            f"ratekeeper bench: the simulator needs a source checkout with the bench extra "
            f"(pip install -e '.[bench]'): {exc}",
            file=sys.stderr,
        )
        return 2
    code: int = cli.main(args.args, prog="ratekeeper bench")
    return code
