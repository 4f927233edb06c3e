"""One rate limit server process (``ratekeeper serve``).

``app`` is the composition root (stores and gRPC services are tables there); ``settings`` the
typed settings; ``ratelimit`` the Envoy RLS decisions, served over gRPC by ``rls`` and over HTTP
by ``http``; ``report_service`` the batch reports; ``health``, ``metrics`` and ``reload`` the
operational parts. See ``docs/operations.md``.
"""
