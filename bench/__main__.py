"""``python -m bench [--quick]``: the side-by-side traffic simulator (see bench/sim)."""

from __future__ import annotations

import sys

from bench.sim.cli import main

if __name__ == "__main__":
    sys.exit(main())
