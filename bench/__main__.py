"""``python -m bench [--quick]``: the side-by-side traffic simulator (see bench/sim).

``ratekeeper bench`` runs this module too, and names itself through ``RATEKEEPER_BENCH_PROG``.
"""

from __future__ import annotations

import os
import sys

from bench.sim.cli import main

if __name__ == "__main__":
    sys.exit(main(prog=os.environ.get("RATEKEEPER_BENCH_PROG", "python -m bench")))
