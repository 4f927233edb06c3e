"""``ratekeeper sidecar``: the server's RLS decisions over a store that decides locally and
batch-reports (see :mod:`ratekeeper.sidecar.store` for why a store)."""
