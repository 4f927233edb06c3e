"""A user-space TCP relay that adds network latency, preserving byte order.

The harness puts one relay in front of each server it wants to look remote (clients → service,
service → Redis). For every accepted connection the relay opens one to the target and pumps each
direction separately: a chunk read at ``t`` is written at ``max(t + delay, previous release)``,
so bytes never overtake each other (HTTP/2 and RESP are streams) while the delay still varies.

Each connection direction draws a one-way delay from the configured distribution and holds it for
``epoch_ms`` (0: a fresh draw per chunk). Holding a draw for a few milliseconds models congestion
episodes that delay everything in flight together, and keeps a request that the sender wrote as
two chunks (HTTP/2 HEADERS then DATA) from paying the worse of two draws.

Run as a process: ``python -m bench.sim.relay --target HOST:PORT [--listen-port N] --dist
lognormal --median-ms 2 --p99-ms 15 --epoch-ms 5 --seed 1``; it prints ``READY <port>`` once it
listens and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.sim.spec import NetworkModel
from ratekeeper.testing.procs import ManagedProcess, log_line, start

__all__ = [
    "SAMPLERS",
    "DelayProcess",
    "Relay",
    "lognormal_sigma",
    "main",
    "release_at",
    "start_relay",
]

#: The standard normal's 99th percentile: a lognormal's p99 is ``median · exp(Z99 · sigma)``.
Z99 = 2.3263478740408408

NS_PER_MS = 1_000_000
_CHUNK = 65_536

Sampler = Callable[[], float]


def lognormal_sigma(median_ms: float, p99_ms: float) -> float:
    """The lognormal shape parameter that puts the 99th percentile at ``p99_ms``."""
    return math.log(p99_ms / median_ms) / Z99


def _lognormal(model: NetworkModel, rng: np.random.Generator) -> Sampler:
    mu, sigma = math.log(model.median_ms), lognormal_sigma(model.median_ms, model.p99_ms)
    return lambda: float(rng.lognormal(mu, sigma))


def _constant(model: NetworkModel, rng: np.random.Generator) -> Sampler:
    return lambda: model.median_ms


def _none(model: NetworkModel, rng: np.random.Generator) -> Sampler:
    return lambda: 0.0


#: Delay distributions by name: each returns a sampler of one-way delays in ms.
SAMPLERS: dict[str, Callable[[NetworkModel, np.random.Generator], Sampler]] = {
    "lognormal": _lognormal,
    "constant": _constant,
    "none": _none,
}


def release_at(arrival_ns: int, delay_ns: int, last_release_ns: int) -> int:
    """When a chunk read at ``arrival_ns`` may be written: delayed, and never before its elders."""
    return max(arrival_ns + delay_ns, last_release_ns)


class DelayProcess:
    """The delay of one connection direction over time; a draw holds for one epoch."""

    def __init__(self, model: NetworkModel, rng: np.random.Generator) -> None:
        self._sample = SAMPLERS[model.dist](model, rng)
        self._epoch_ns = int(model.epoch_ms * NS_PER_MS)
        self._until = -1
        self._delay_ns = 0

    def delay_ns(self, now_ns: int) -> int:
        """The one-way delay for a chunk read at ``now_ns``."""
        if now_ns >= self._until:
            self._delay_ns = int(self._sample() * NS_PER_MS)
            self._until = now_ns + self._epoch_ns
        return self._delay_ns


class Relay:
    """Accepts on ``listen`` and relays every connection to ``target`` with added latency."""

    def __init__(self, target: tuple[str, int], model: NetworkModel, seed: int = 0) -> None:
        self._target = target
        self._model = model
        self._seeds = np.random.SeedSequence(seed)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._accept, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        """Stop listening and drop every relayed connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for writer in list(self._writers):
            writer.close()

    def _delays(self) -> DelayProcess:
        # Each direction gets its own generator, so directions and connections are independent.
        return DelayProcess(self._model, np.random.default_rng(self._seeds.spawn(1)[0]))

    async def _accept(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self._target)
        except OSError:
            down_w.close()
            return
        self._writers.update((up_w, down_w))
        try:
            await asyncio.gather(
                _pump(down_r, up_w, self._delays()), _pump(up_r, down_w, self._delays())
            )
        finally:
            for writer in (up_w, down_w):
                writer.close()
                self._writers.discard(writer)


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delays: DelayProcess
) -> None:
    """Copy one direction, each chunk released at its delayed time, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()

    async def read() -> None:
        last = 0
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(_CHUNK):
                now = int(loop.time() * 1e9)
                last = release_at(now, delays.delay_ns(now), last)
                queue.put_nowait((last, chunk))
        queue.put_nowait((last, b""))  # end of stream, after everything read before it

    async def write() -> None:
        while True:
            release, chunk = await queue.get()
            wait = release / 1e9 - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    reading = asyncio.ensure_future(read())
    try:
        await write()
    except ConnectionError:
        reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.sim.relay", description=__doc__)
    parser.add_argument("--target", required=True, help="HOST:PORT to relay to")
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--dist", choices=sorted(SAMPLERS), default="lognormal")
    parser.add_argument("--median-ms", type=float, default=2.0)
    parser.add_argument("--p99-ms", type=float, default=15.0)
    parser.add_argument("--epoch-ms", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    host, _, port = args.target.rpartition(":")
    model = NetworkModel(args.dist, args.median_ms, args.p99_ms, args.epoch_ms)
    relay = Relay((host, int(port)), model, args.seed)
    bound = await relay.start(port=args.listen_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"READY {bound}", flush=True)
    await stop.wait()
    await relay.close()


def start_relay(
    target: int, model: NetworkModel, seed: int, *, name: str, log_dir: Path, cwd: Path
) -> tuple[ManagedProcess, int]:
    """This module as a process relaying to loopback port ``target`` under ``model``: the
    process (stop it when done) and the port it listens on."""
    argv = [sys.executable, "-m", "bench.sim.relay", "--target", f"127.0.0.1:{target}"]
    argv += ["--dist", model.dist, "--median-ms", str(model.median_ms)]
    argv += ["--p99-ms", str(model.p99_ms), "--epoch-ms", str(model.epoch_ms)]
    argv += ["--seed", str(seed)]
    relay = start(argv, name=name, log_dir=log_dir, ready=log_line(r"READY \d+"), cwd=cwd)
    found = re.search(r"READY (\d+)", relay.log_text())
    assert found is not None, relay.describe()
    return relay, int(found[1])


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(_serve(_parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
