"""One client process of the cluster hand-off tests: offers a steady rate on several keys
through ``ratekeeper.Limiter`` pointed at one member, and prints what it admitted.

Run as ``python cluster_load_worker.py RATE SECONDS KEYS``: ``RATE`` hits per second on each of
``KEYS`` keys ``k0 ...``. It prints ``ready`` once imported, reads the member's address from
stdin, waits until the client knows the assignment, then offers for ``SECONDS`` and prints
``{"admitted": {key: n}, "offered": n, "seconds": s, "failed": n, "rerouted": n}`` after closing
(which sends the last report).
"""

from __future__ import annotations

import json
import sys
import time

from ratekeeper import Limiter


def main(rate: float, seconds: float, keys: int) -> None:
    print("ready", flush=True)
    target = sys.stdin.readline().strip()
    names = [f"k{i}" for i in range(keys)]
    admitted = dict.fromkeys(names, 0)
    offered = 0
    with Limiter(target, limit="50/s", report_interval=0.1) as lim:
        lim.wait_ready(10)
        start = time.monotonic()
        due = start
        step = 1.0 / rate
        while (now := time.monotonic()) - start < seconds:
            if now < due:
                time.sleep(due - now)
                continue
            for name in names:
                offered += 1
                admitted[name] += lim.allow(name)
            due += step
        elapsed = time.monotonic() - start
        stats = lim.stats
    print(
        json.dumps(
            {
                "admitted": admitted,
                "offered": offered,
                "seconds": elapsed,
                "failed": stats.failed,
                "rerouted": stats.rerouted,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
