"""The load and the measuring conditions of ``bench.envoy_bench``: one slice of ``wrk``, the
quantiles it reports, their pooling over slices, and the conditions a slice runs under.

**Load.** ``wrk -t1 -c1`` sends ``GET /`` with a rotating ``x-user`` (100 users), back to back
(closed loop: the next request leaves when the last answer arrives, so no queueing and no
coordinated omission at one connection), or paced: ``pace_ms`` milliseconds between an answer and
the next request (wrk's ``delay``), the same offered rate for every row whatever its latency.

**Percentiles.** wrk keeps every latency at 1 µs resolution but prints only a few percentiles;
the script prints its quantile function on a fine grid (every 0.5% to 99%, every 0.01% above),
and :func:`pooled` reads a percentile off the mixture of several slices, each weighted by its
requests: the p99 of all the requests of a row, not a median of per-slice p99s.

**Conditions** (:class:`Conditions`), the same for every row: with ``realtime`` the row's
processes (every thread of each) and wrk run ``SCHED_RR`` at one priority while it is measured,
above every ordinary process on the machine: neither the idle rows' timers and reports nor other
work sharing the two cores (other sessions' tests) can take a core from the measured path, only
the other core. Undone after the slice. The other rows are not frozen (``SIGSTOP``): tried, a
5 s stall of the RLQS Envoy and its server together was followed by 429s (937 of 4,439 requests
of one slice), a state no deployment is in.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["GRID", "Conditions", "Slice", "pooled", "wrk", "wrk_script"]

#: The percentiles each slice prints (its quantile function), ending at the maximum.
GRID: Final = (
    tuple(i * 0.5 for i in range(1, 198))
    + tuple(99 + i * 0.01 for i in range(100))
    + (99.995, 100.0)
)
#: The real-time priority (``SCHED_RR``) of a measured row and of wrk.
RT_PRIORITY: Final = 10

_SCRIPT = """\
local n = 0
request = function()
  n = n + 1
  wrk.headers["x-user"] = "u" .. (n %% 100)
  return wrk.format("GET", "/")
end
%s
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout))
  for _, p in ipairs({%s}) do
    -- wrk's percentile(100) is 0: the maximum is its own field.
    local v = p >= 100 and latency.max or latency:percentile(p)
    io.write(string.format("Q %%.3f %%d\\n", p, v))
  end
end
"""


def wrk_script(pace_ms: int = 0) -> str:
    """The Lua script: rotating users, optional pacing, the quantile grid printed at the end."""
    delay = f"delay = function() return {pace_ms} end" if pace_ms else ""
    return _SCRIPT % (delay, ",".join(f"{p:.3f}" for p in GRID))


@dataclass(frozen=True, slots=True)
class Slice:
    """One wrk run: requests, errors (non-2xx included), and latency (µs) at each ``GRID``
    percentile."""

    requests: int
    errors: int
    quantiles: tuple[int, ...]

    def at(self, percentile: float) -> int:
        """This slice's latency at ``percentile`` (the grid's first point at or above it)."""
        return self.quantiles[min(bisect.bisect_left(GRID, percentile - 1e-9), len(GRID) - 1)]


def wrk(port: int, seconds: int, script: Path, *, realtime: bool = False) -> Slice:
    """One wrk run against Envoy's (or the upstream's) listener on ``port``."""
    argv = ["chrt", "-r", str(RT_PRIORITY)] if realtime else []
    argv += ["wrk", "-t1", "-c1", f"-d{seconds}s", "-s", str(script)]
    argv += [f"http://127.0.0.1:{port}/"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    found = re.search(r"^RESULT (\d+) (\d+)$", out.stdout, re.MULTILINE)
    quantiles = tuple(int(v) for v in re.findall(r"^Q \S+ (\d+)$", out.stdout, re.MULTILINE))
    if found is None or len(quantiles) != len(GRID):
        raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")
    return Slice(int(found[1]), int(found[2]), quantiles)


def pooled(slices: Sequence[Slice], percentile: float) -> float:
    """``percentile`` of all the requests of ``slices`` together: each slice's quantile points
    weighted by its share of requests between one grid point and the last."""
    points: list[tuple[int, float]] = []
    for one in slices:
        previous = 0.0
        for p, value in zip(GRID, one.quantiles, strict=True):
            points.append((value, one.requests * (p - previous) / 100))
            previous = p
    points.sort()
    total, seen = sum(w for _, w in points), 0.0
    for value, weight in points:
        seen += weight
        if seen >= total * percentile / 100 - 1e-9:
            return float(value)
    return float(points[-1][0]) if points else float("nan")


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except FileNotFoundError:
        return []


def _schedule(pids: Iterable[int], policy: int, priority: int) -> None:
    for pid in pids:
        for tid in _threads(pid):
            with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                os.sched_setscheduler(tid, policy, os.sched_param(priority))


@dataclass(frozen=True, slots=True)
class Conditions:
    """How every slice is run: real-time priority for the measured path if ``realtime``."""

    realtime: bool

    @staticmethod
    def realtime_allowed() -> bool:
        """Whether this process may raise another's scheduling class (root, or CAP_SYS_NICE)."""
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
        except PermissionError:
            return False
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True

    @contextlib.contextmanager
    def measuring(self, row: frozenset[int]) -> Iterator[None]:
        """``row``'s processes real-time (if ``realtime``) until the block exits."""
        if self.realtime:
            _schedule(row, os.SCHED_RR, RT_PRIORITY)
        try:
            yield
        finally:
            if self.realtime:
                _schedule(row, os.SCHED_OTHER, 0)
