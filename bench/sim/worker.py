"""A client process: several simulated clients, one thread each, playing their arrivals.

Each client thread is one application instance: it connects its own decider (its own gRPC
channel, or its own ``Limiter`` with its own client id), waits for the common start, then starts
each decision when its arrival is due (open loop: a slow decision delays that request, not the
next arrival). The decider times its own call with ``perf_counter_ns``; the record keeps when
each decision became known, which is when an admitted request would proceed.

Clocks: ``time.monotonic_ns`` is system-wide on Linux, so every process measures offsets from
the same start instant.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.sim.archs import Architecture, Decider, Done, make_decider

__all__ = ["ClientPlan", "WorkerPlan", "load_records", "run_worker"]

#: How long in-flight decisions get to finish after the last arrival.
DRAIN_S = 30.0


@dataclass(frozen=True, slots=True)
class ClientPlan:
    """One simulated client's arrivals."""

    client_id: str
    #: Offsets from the start (ns), ascending.
    t_ns: npt.NDArray[np.int64]
    #: Key index of each arrival.
    key: npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """Everything one worker process needs; picklable."""

    arch: Architecture
    #: ``host:port`` the clients talk to (a relay when the network is emulated).
    target: str
    #: The policy file the service loads (the batch-reporting client loads it too).
    config: Path
    clients: tuple[ClientPlan, ...]
    #: Key index → key value.
    key_names: tuple[str, ...]
    #: Where the records go (an ``.npz``).
    out: Path


class _Recorder:
    """Preallocated arrays; each decision writes only its own row, once."""

    def __init__(self, n: int) -> None:
        self.at_ns = np.zeros(n, np.int64)
        self.latency_ns = np.zeros(n, np.int64)
        self.admitted = np.zeros(n, np.bool_)
        self.error = np.zeros(n, np.bool_)
        #: How late each decision was started after its arrival was due (client stalls).
        self.late_ns = np.zeros(n, np.int64)
        self._pending = n
        self._lock = threading.Condition()

    def done_for(self, row: int, start_ns: int) -> Done:
        """The ``done`` callback of one decision: stamps when it was known."""

        def done(admitted: bool, error: bool, latency_ns: int) -> None:
            self.at_ns[row] = time.monotonic_ns() - start_ns
            self.latency_ns[row] = latency_ns
            self.admitted[row] = admitted
            self.error[row] = error
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._lock.notify_all()

        return done

    def wait(self, timeout_s: float) -> bool:
        """Wait for every decision to be known; False if some never were."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._pending, timeout_s)


def _play(
    plan: ClientPlan,
    decide: Decider,
    names: tuple[str, ...],
    rec: _Recorder,
    at: int,
    start_ns: int,
) -> None:
    """Start each decision when its arrival is due; late arrivals go at once, in order."""
    for i, (due, key) in enumerate(zip(plan.t_ns.tolist(), plan.key.tolist(), strict=True)):
        wait = start_ns + due - time.monotonic_ns()
        if wait > 0:
            time.sleep(wait / 1e9)
        rec.late_ns[at + i] = time.monotonic_ns() - start_ns - due
        decide(names[key], rec.done_for(at + i, start_ns))


def run_worker(plan: WorkerPlan, ready: Any, go: Event, start_ns: Any) -> None:
    """Process entry point: connect every client, report ready, play from the common start."""
    deciders = [
        make_decider(plan.arch, plan.target, plan.config, c.client_id) for c in plan.clients
    ]
    offsets = np.cumsum([0] + [c.t_ns.size for c in plan.clients]).tolist()
    rec = _Recorder(offsets[-1])
    ready.put(plan.out.name)
    go.wait()
    threads = [
        threading.Thread(
            target=_play,
            args=(c, decide, plan.key_names, rec, offsets[i], start_ns.value),
            name=c.client_id,
        )
        for i, (c, (decide, _)) in enumerate(zip(plan.clients, deciders, strict=True))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if not rec.wait(DRAIN_S):
        raise RuntimeError(f"{plan.out.name}: decisions still pending after {DRAIN_S} s")
    for _, close in deciders:
        close()
    key = np.concatenate([c.key for c in plan.clients]) if plan.clients else np.zeros(0, np.int32)
    np.savez(
        plan.out,
        at_ns=rec.at_ns,
        latency_ns=rec.latency_ns,
        admitted=rec.admitted,
        error=rec.error,
        late_ns=rec.late_ns,
        key=key,
    )


def load_records(paths: list[Path]) -> dict[str, npt.NDArray[Any]]:
    """Every worker's records, concatenated and sorted by decision time."""
    parts = [dict(np.load(path)) for path in paths]
    merged = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    order = np.argsort(merged["at_ns"], kind="stable")
    return {name: values[order] for name, values in merged.items()}
