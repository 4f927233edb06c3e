"""The assigner: cluster membership from heartbeats, the assignment of slices, its Watch.

:mod:`~ratekeeper.assigner.machine` is the passive state machine (no IO, time passed in);
:mod:`~ratekeeper.assigner.server` drives it over gRPC with asyncio, standalone
(``ratekeeper assigner``) or embedded in a server.
"""
