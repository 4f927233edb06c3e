"""One client process of the overshoot test: offers a steady rate on one key, prints the counts.

Run as ``python overshoot_worker.py RATE SECONDS``. It prints ``ready`` once imported (the slow
part, done while the server starts), reads the server's address from stdin and starts at once (so
all workers start together), and finally prints ``{"admitted": .., "offered": ..}`` as JSON after
closing (which sends its last report).
"""

from __future__ import annotations

import json
import sys
import time

from ratekeeper import Limiter


def main(rate: float, seconds: float) -> None:
    print("ready", flush=True)
    target = sys.stdin.readline().strip()
    with Limiter(target, limit="100/s", report_interval=0.1) as lim:
        start = time.monotonic()
        due, offered, admitted = start, 0, 0
        while (now := time.monotonic()) - start < seconds:
            if now < due:
                time.sleep(due - now)
                continue
            offered += 1
            admitted += lim.allow("shared")
            due += 1.0 / rate
    print(json.dumps({"admitted": admitted, "offered": offered}), flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), float(sys.argv[2]))
