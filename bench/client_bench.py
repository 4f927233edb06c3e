"""Client decision cost: ``Limiter.allow()`` against a bare dict increment and Python peers.

Everything is measured in one process and one run, interleaved round by round (the machine is
shared and noisy), and each figure is the median over rounds of ns per call; ratios are taken
against the dict baseline of the same run:

* ``dict``: ``def f(k): d[k] += 1``, the floor any per-key counter pays;
* ``ratekeeper allow()``: a ``ratekeeper.Limiter`` on one always-admitted key. Its reporter
  thread runs as usual, reporting to an address nobody listens on (the decision never waits on
  it either way: ``tests/client/test_servers.py`` shows the same latency with a live server);
* ``limits``: ``FixedWindowRateLimiter(MemoryStorage()).hit``;
* ``throttled-py``: ``Throttled(using="token_bucket", store=MemoryStore()).limit``;
* the dict and ``allow()`` again with 4 threads sharing the key (ns per call = wall time over all
  threads' calls; the GIL serialises them, so this shows the cost of contention, not a speed-up);
* middleware overhead per request: a bare ASGI app called directly, with and without
  ``RateLimitMiddleware``, and a bare WSGI app called with a prepared environ, with and without
  ``WsgiRateLimitMiddleware`` (headers included).

    python -m bench.client_bench            # 7 rounds of 200k calls
    python -m bench.client_bench --quick    # 3 rounds of 50k calls
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter
from throttled import Throttled, rate_limiter, store

from ratekeeper import Limiter
from ratekeeper.client.integrations import RateLimitMiddleware, WsgiRateLimitMiddleware

HUGE = 1_000_000_000
THREADS = 4


def loop_ns(fn: Callable[[str], object], calls: int) -> float:
    """ns per call of ``fn("k")`` over ``calls`` calls."""
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn("k")
    return (time.perf_counter_ns() - t0) / calls


def threaded_ns(fn: Callable[[str], object], calls: int) -> float:
    """ns per call with ``THREADS`` threads each making ``calls // THREADS`` calls."""
    each = calls // THREADS
    barrier = threading.Barrier(THREADS + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(each):
            fn("k")

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter_ns()
    for t in threads:
        t.join()
    return (time.perf_counter_ns() - t0) / (each * THREADS)


def asgi_ns(app: Callable[..., Any], calls: int) -> float:
    """ns per request of an ASGI app driven directly on an event loop."""
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": ("10.0.0.1", 1)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def run() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            await app(scope, receive, send)
        return (time.perf_counter_ns() - t0) / calls

    return asyncio.run(run())


async def bare_asgi(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def wsgi_ns(app: Callable[..., Any], calls: int) -> float:
    """ns per request of a WSGI app called with a prepared environ."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "REMOTE_ADDR": "10.0.0.1"}

    def start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> None:
        return None

    t0 = time.perf_counter_ns()
    for _ in range(calls):
        for _chunk in app(environ, start_response):
            pass
    return (time.perf_counter_ns() - t0) / calls


def bare_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="3 rounds of 50k calls")
    args = parser.parse_args(argv)
    rounds, calls = (3, 50_000) if args.quick else (args.rounds, args.calls)

    counts = {"k": 0}

    def dict_increment(k: str) -> None:
        counts[k] += 1

    lim = Limiter("127.0.0.1:9", limit=f"{HUGE}/s", report_interval=0.1)
    fixed = FixedWindowRateLimiter(MemoryStorage())
    item = parse(f"{HUGE}/second")
    throttle = Throttled(
        using="token_bucket",
        quota=rate_limiter.per_sec(HUGE, burst=HUGE),
        store=store.MemoryStore(),
    )
    mw_lim = Limiter("127.0.0.1:9", limit=f"{HUGE}/s", report_interval=0.1)
    asgi_app = RateLimitMiddleware(bare_asgi, mw_lim)
    wsgi_app = WsgiRateLimitMiddleware(bare_wsgi, mw_lim)
    mw_calls = max(calls // 10, 1000)
    cases: dict[str, Callable[[], float]] = {
        "dict increment": lambda: loop_ns(dict_increment, calls),
        "ratekeeper allow()": lambda: loop_ns(lim.allow, calls),
        "limits FixedWindow hit()": lambda: loop_ns(lambda k: fixed.hit(item, k), calls // 4),
        "throttled-py token_bucket limit()": lambda: loop_ns(throttle.limit, calls // 4),
        f"dict increment, {THREADS} threads": lambda: threaded_ns(dict_increment, calls),
        f"ratekeeper allow(), {THREADS} threads": lambda: threaded_ns(lim.allow, calls),
        "ASGI bare app": lambda: asgi_ns(bare_asgi, mw_calls),
        "ASGI + RateLimitMiddleware": lambda: asgi_ns(asgi_app, mw_calls),
        "WSGI bare app": lambda: wsgi_ns(bare_wsgi, mw_calls),
        "WSGI + WsgiRateLimitMiddleware": lambda: wsgi_ns(wsgi_app, mw_calls),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            samples[name].append(run())
    lim.close()
    mw_lim.close()
    print(render(samples, rounds, calls))
    return 0


#: Each compared case and its baseline (measured right before it in every round).
BASELINES = {
    "ratekeeper allow()": ("dict", "dict increment"),
    "limits FixedWindow hit()": ("dict", "dict increment"),
    "throttled-py token_bucket limit()": ("dict", "dict increment"),
    f"ratekeeper allow(), {THREADS} threads": (f"dict, {THREADS} threads",
                                              f"dict increment, {THREADS} threads"),
    "ASGI + RateLimitMiddleware": ("bare", "ASGI bare app"),
    "WSGI + WsgiRateLimitMiddleware": ("bare", "WSGI bare app"),
}  # fmt: skip


def render(samples: dict[str, list[float]], rounds: int, calls: int) -> str:
    """A Markdown table: median ns/op, and the median over rounds of the ratio to the baseline.

    Ratios are taken within each round, so load that comes and goes between rounds cancels.
    """
    lines = [
        f"{rounds} interleaved rounds, {calls:,} calls per round; medians over rounds",
        "",
        "| case | ns/op | vs baseline (same round) |",
        "|---|---:|---:|",
    ]
    for name, values in samples.items():
        ns = statistics.median(values)
        ratio = ""
        if name in BASELINES:
            label, base = BASELINES[name]
            ratios = [v / b for v, b in zip(values, samples[base], strict=True)]
            ratio = f"{statistics.median(ratios):.2f}x {label}"
            if label == "bare":
                extra = [v - b for v, b in zip(values, samples[base], strict=True)]
                ratio += f" (+{statistics.median(extra) / 1000:.1f} us)"
        lines.append(f"| {name} | {ns:,.0f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
