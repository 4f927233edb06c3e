"""Protocol logic with no transport: what the servers decide, as typed values in and out.

``rls`` decides Envoy RLS requests (planned by ``rls_plan``, answered by ``rls_answer``, encoded
by ``rls_wire``); ``report`` applies batch reports (``report_values`` are its typed inputs and
outputs); ``stats`` is the one interface both count through; ``ownership`` the gate in front of
the store where a replica checks what it owns; ``policy`` the loaded policy they read.

Nothing here imports grpc, aiohttp or prometheus_client (``tests/protocol/test_imports.py``):
the gRPC servicers, the HTTP endpoints and an embedded sidecar all wrap the same logic.
"""
