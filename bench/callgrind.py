"""Instructions a Python child process executes, counted by valgrind's callgrind.

Benchmarks measure CPU cost as instructions (timing is meaningless on a shared machine): run
the measured work in a child ``python -m <module> <args>`` under callgrind and read its total.
Subtract a run of the same child that does no measured work, so start-up and warm-up cancel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

__all__ = ["available", "instructions"]

_COLLECTED = re.compile(rb"Collected : (\d+)")


def available() -> bool:
    """Whether valgrind is installed."""
    return shutil.which("valgrind") is not None


def instructions(module: str, args: Sequence[str], timeout: float = 1800) -> int:
    """Instructions ``python -m module *args`` executes (``PYTHONHASHSEED=0``)."""
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += ["-m", module, *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(argv, capture_output=True, env=env, timeout=timeout, check=True)
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{done.stderr[-2000:]!r}")
    return int(found.group(1))
