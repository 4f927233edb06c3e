"""The one seam where gRPC channels to other ratekeeper processes are made.

Every client of a ratekeeper gRPC API (the Limiter's reporter, benchmarks, test helpers, and
later the cluster's members and the sidecar) opens its channels here, so transport security and
channel options are decided in one place.
"""
