"""The bounds table of docs/bounds.md, measured on the virtual-time model.

    PYTHONPATH=src:. python bench/model_accuracy.py [--bound SUBSTRING]

For each bound: the cases run, the worst measured value and its case, and whether it holds.
"""

from __future__ import annotations

import argparse
import time

from ratekeeper.testing.model.cases import BOUNDS, measure_bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--bound", default="", help="only bounds whose name contains this")
    args = parser.parse_args()
    print("| bound | cases run | worst measured | worst case | holds? |")
    print("|---|---|---|---|---|")
    for bound in BOUNDS:
        if args.bound not in bound.name:
            continue
        start = time.perf_counter()
        count, worst, where = measure_bound(bound)
        holds = "yes" if worst <= bound.target else "**no**"
        took = time.perf_counter() - start
        print(
            f"| {bound.name} | {count} | {worst:.4g} {bound.unit} | {where} | {holds} |"
            f"  <!-- {took:.0f}s -->",
            flush=True,
        )


if __name__ == "__main__":
    main()
