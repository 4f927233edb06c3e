"""Two cluster members under mTLS and the token: an RLS descriptor owned by the other member is
forwarded over the members' peer channels (their own certificates) and counted by its owner."""

from __future__ import annotations

from pathlib import Path

import grpc.aio
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.slices import even_split
from ratekeeper.server.app import Replica
from ratekeeper.server.forwarding import AssignmentOwners
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.testing.clock import ManualClock
from ratekeeper.testing.fixed_members import build_member
from ratekeeper.testing.procs import free_port
from ratekeeper.transport.channels import open_aio_channel
from ratekeeper.transport.tls import TlsSettings
from tests.server.conftest import descriptor
from tests.transport.certs import Ca

CONFIG = """
domain: test
descriptors:
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 2}
"""
OK, OVER = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT


async def test_a_descriptor_owned_by_the_other_member_is_forwarded_over_mtls(
    tmp_path: Path,
) -> None:
    ca = Ca.make(tmp_path)
    (tmp_path / "token").write_text("members-token")
    ports = [free_port(), free_port()]
    addresses = [f"127.0.0.1:{port}" for port in ports]
    assignment = even_split(addresses)
    replicas: list[Replica] = []
    try:
        for i, port in enumerate(ports):
            cert = ca.issue(f"member{i}")
            config = tmp_path / f"member{i}"
            config.mkdir()
            (config / "policy.yaml").write_text(CONFIG)
            settings = with_options(
                ServerSettings(),
                grpc_port=port,
                http_port=0,
                config=str(config),
                grpc_tls_cert=cert.cert,
                grpc_tls_key=cert.key,
                grpc_tls_client_ca=ca.file,
                auth_token_file=str(tmp_path / "token"),
            )
            owners = AssignmentOwners(addresses[i], assignment)
            replica = Replica(build_member(settings, owners, ManualClock()))
            await replica.start()
            replicas.append(replica)
        value = next(
            f"v{n}"
            for n in range(1000)
            if assignment.owner_of(key_hash(canonical_bytes("test", (("key1", f"v{n}"),))))
            == addresses[1]
        )
        envoy = ca.issue("envoy", server=False)
        tls = TlsSettings(ca=ca.file, cert=envoy.cert, key=envoy.key)
        channel: grpc.aio.Channel = open_aio_channel(addresses[0], tls=tls)
        try:
            stub = rls_pb2_grpc.RateLimitServiceStub(channel)
            request = rls_pb2.RateLimitRequest(
                domain="test", descriptors=[descriptor(("key1", value))]
            )
            codes = [(await stub.ShouldRateLimit(request)).overall_code for _ in range(3)]
        finally:
            await channel.close()
        assert codes == [OK, OK, OVER]  # 2 a minute, counted once, by the owner over mTLS
        owner = replicas[1].components.metrics.registry
        assert (owner.get_sample_value("ratekeeper_store_keys") or 0) >= 1
        assert (
            replicas[0].components.metrics.registry.get_sample_value("ratekeeper_store_keys") or 0
        ) == 0
    finally:
        for replica in replicas:
            await replica.stop(0)
