"""A deterministic virtual-time model of the report protocol: a fleet of real clients, one real
server, a simulated network, all driven by one discrete-event loop.

The client is the production :class:`~ratekeeper.client.machine.LimiterMachine` and the server the
production :class:`~ratekeeper.protocol.report.ReportProcessor`; only time, the network and the
traffic are simulated. Each side is reached through one adapter module (:mod:`.fleet_client`,
:mod:`.fleet_server`) so that the model can be retargeted when those layers are refactored.
No sockets, threads or wall clock: the same :class:`~.fleet.Scenario` and seed give the same
trace.

* :mod:`.fleet`: the scenario and the event loop (:func:`~.fleet.simulate`);
* :mod:`.network`: delay distributions, loss, bounded reordering, partitions;
* :mod:`.arrivals`: request arrival processes;
* :mod:`.measure`: an exact token bucket and the per-key measurements the bounds are stated in;
* :mod:`.bounds`: each bound of docs/bounds.md as a measure of a run;
* :mod:`.cases`: the named case grids ``bench/model_accuracy.py`` runs for each bound;
* :mod:`.runner`: runs a coroutine that never suspends, without an event loop.
"""
