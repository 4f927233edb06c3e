"""The side-by-side traffic simulator.

The same seeded arrival schedule is played against the three architectures of the seed, each run
as real processes on loopback (see ``ARCHITECTURES`` in :mod:`bench.sim.archs`):

* **A** legacy: a synchronous Envoy RLS call per request → service → Redis fixed window;
* **B** sync in-memory: a synchronous RLS call per request → service with in-memory buckets;
* **C** batch reporting: ``ratekeeper.Limiter`` decides locally, reports every ~100 ms.

Layout: ``shapes.yaml`` (traffic shapes, networks and profiles, as data) → :mod:`spec` (loader)
→ :mod:`schedule` (pure arrival generation) → :mod:`runner` (processes, clients, faults) →
:mod:`metrics` (pure figures) → :mod:`report` (markdown and plots). :mod:`relay` emulates the
network between processes.
"""
