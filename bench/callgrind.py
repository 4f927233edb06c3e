"""Instructions a benchmark's child process executes, counted by valgrind's callgrind.

The machine's cores are shared and noisy; an instruction count is the same on every run (the
hash seed fixed), so the instruction benchmarks (``bench.rls_instructions``,
``bench.report_apply --callgrind``) compare figures through it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["instructions"]

_COLLECTED = re.compile(rb"Collected : (\d+)")


def instructions(module: str, args: Sequence[str], timeout: float) -> int:
    """Instructions ``python -m module *args`` executes under callgrind (``PYTHONHASHSEED=0``)."""
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += ["-m", module, *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]!r}")
    return int(found.group(1))
