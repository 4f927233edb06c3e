"""One rate limit server process (``ratekeeper serve``): the wire around the protocol logic.

``app`` is the composition root (stores and gRPC services are tables there); ``settings`` the
typed settings; ``rls_servicer`` serves :mod:`ratekeeper.protocol.rls` over gRPC and ``http``
over ``POST /json``; ``report_servicer`` serves :mod:`ratekeeper.protocol.report`; ``health``,
``metrics`` (the Prometheus stats sink) and ``reload`` are the operational parts. See
``docs/operations.md``.
"""
