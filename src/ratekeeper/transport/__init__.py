"""The one seam where gRPC channels to other ratekeeper processes are made, and gRPC listeners
are secured.

Every client of a ratekeeper gRPC API (the Limiter's reporter, the sidecar's upstream, the
cluster's members and elected assigners, ``cluster status``, benchmarks, test helpers) opens
its channels here (:mod:`.channels`), and every gRPC listener (``serve``, ``sidecar``,
``assigner``) binds here (:mod:`.listening`), so transport security and connection limits are
decided in one place.
"""
