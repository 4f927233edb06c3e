"""Integration tests: real processes (ratekeeper serve, Envoy, redis-server) over loopback."""
