"""The standalone assigner under TLS, mTLS and the token, as real processes (issue 16 item 6:
every cluster channel): ``ratekeeper assigner`` with ``RATEKEEPER_GRPC_TLS_*`` and
``--auth-token-file``, members ``ratekeeper serve --join`` with and without the CA, the
certificate and the token, and ``ratekeeper cluster status`` asked over mTLS."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path

import grpc
import grpc.aio
import pytest

from ratekeeper.assigner.election import ElectionSettings
from ratekeeper.assigner.etcd_coordination import EtcdCoordination, parse_endpoints
from ratekeeper.assigner.ha import running_ha_assigner
from ratekeeper.cli.main import main
from ratekeeper.proto.cluster import AssignerCallsAio
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.testing.cluster import Cluster, member_argv
from ratekeeper.testing.etcd_server import EtcdServer
from ratekeeper.testing.procs import ManagedProcess, free_port, start
from ratekeeper.transport.channels import open_aio_channel
from ratekeeper.transport.tls import TlsSettings
from tests.assigner.test_server import FAST, Member
from tests.transport.certs import Ca

pytestmark = pytest.mark.integration

TOKEN = "cluster-token-5b4a39"


def _secured(tmp_path: Path, ca: Ca, token: str = TOKEN, name: str = "member") -> dict[str, str]:
    """The environment of a process of the secured cluster: a certificate ``name`` from ``ca``
    (valid for 127.0.0.1; the cluster's processes share one), mTLS with that CA, ``token``."""
    member = ca.issue(name)
    token_file = tmp_path / f"token-{token}"
    token_file.write_text(token)
    return {
        "RATEKEEPER_GRPC_TLS_CERT": member.cert,
        "RATEKEEPER_GRPC_TLS_KEY": member.key,
        "RATEKEEPER_GRPC_TLS_CLIENT_CA": ca.file,
        "RATEKEEPER_AUTH_TOKEN_FILE": str(token_file),
    }


def _status_tls(ca: Ca) -> TlsSettings:
    operator = ca.issue("operator", server=False)
    return TlsSettings(ca=ca.file, cert=operator.cert, key=operator.key)


def _join(cluster: Cluster, tmp_path: Path, name: str, env: dict[str, str]) -> ManagedProcess:
    """A member joining the cluster's assigner with its own environment (not the cluster's)."""
    argv = member_argv(cluster.assigner, free_port(), free_port(), None, "--join-retry-max", "0.5")
    return start(argv, name=name, log_dir=tmp_path, env=env)


def _members(cluster: Cluster) -> set[str]:
    return {m.address for m in cluster.status().members}


def test_members_with_the_ca_certificate_and_token_join_a_tls_only_assigner(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = Ca.make(tmp_path)
    env = _secured(tmp_path, ca)
    tls = _status_tls(ca)
    with Cluster(2, log_dir=tmp_path, env=env, status_tls=tls, status_token=TOKEN) as cluster:
        status = cluster.status()
        running = {m.address for m in status.members if m.state == pb.RUNNING}
        assert running == set(cluster.addresses)  # both joined over mTLS with the token
        assert set(status.assignment.servers) == running
        capsys.readouterr()
        ask = ["cluster", "status", cluster.assigner, "--tls-ca", ca.file]
        ask += ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        assert main([*ask, "--auth-token-file", env["RATEKEEPER_AUTH_TOKEN_FILE"]]) == 0
        table = capsys.readouterr().out
        assert all(address in table for address in cluster.addresses)
        assert main(["cluster", "status", cluster.assigner, "--timeout", "2"]) == 1
        assert "UNAVAILABLE" in capsys.readouterr().err  # plaintext to the TLS-only assigner
        assert main([*ask, "--timeout", "2"]) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err  # mTLS, but no token
        log = cluster.assigner_processes[0].log_text()
    assert "tls=grpc,mtls auth=token" in log
    assert TOKEN not in log


def test_a_tls_only_assigner_refuses_a_plaintext_member_and_a_wrong_token(tmp_path: Path) -> None:
    ca = Ca.make(tmp_path)
    env = _secured(tmp_path, ca)
    tls = _status_tls(ca)
    with Cluster(1, log_dir=tmp_path, env=env, status_tls=tls, status_token=TOKEN) as cluster:
        plaintext = _join(cluster, tmp_path, "plaintext", {})
        wrong_token = _secured(tmp_path, ca, "not-the-token", "wrong")
        wrong = _join(cluster, tmp_path, "wrong-token", wrong_token)
        stranger_ca = Ca.make(tmp_path, "stranger")
        strangers = _secured(tmp_path, stranger_ca, TOKEN, "stranger")
        stranger = _join(cluster, tmp_path, "stranger", strangers)
        refused = (plaintext, wrong, stranger)
        try:
            # each of them heartbeats (every 0.5 s at most) and is refused every time
            deadline = time.monotonic() + 60
            logs = ["", "", ""]
            while time.monotonic() < deadline:
                logs = [process.log_text() for process in refused]
                if all("heartbeat to" in log and "failed" in log for log in logs):
                    break
                time.sleep(0.2)
            assert "UNAVAILABLE" in logs[0], logs[0]  # no TLS: the handshake fails
            assert "UNAUTHENTICATED" in logs[1], logs[1]  # TLS and a certificate, wrong token
            assert "UNAVAILABLE" in logs[2], logs[2]  # a certificate the cluster CA did not sign
            assert _members(cluster) == set(cluster.addresses)  # none of them joined
            assert all(process.alive() for process in refused)  # they keep trying, serving
        finally:
            for process in refused:
                process.stop()


def test_a_plaintext_member_reaches_a_tls_assigner_through_its_cluster_ca(tmp_path: Path) -> None:
    # --cluster-tls-ca: the member's own listener stays plaintext (say, behind a mesh), its
    # channel to the assigner is TLS; the assigner serves TLS without client certificates.
    ca = Ca.make(tmp_path)
    assigner = ca.issue("assigner")
    (tmp_path / "token").write_text(TOKEN)
    token = {"RATEKEEPER_AUTH_TOKEN_FILE": str(tmp_path / "token")}
    env = {"RATEKEEPER_GRPC_TLS_CERT": assigner.cert, "RATEKEEPER_GRPC_TLS_KEY": assigner.key}
    tls = TlsSettings(ca=ca.file)
    with Cluster(0, log_dir=tmp_path, env=env | token, status_tls=tls, status_token=TOKEN) as c:
        member = _join(c, tmp_path, "member", {"RATEKEEPER_CLUSTER_TLS_CA": ca.file} | token)
        try:
            port = member.argv[member.argv.index("--grpc-port") + 1]
            c.wait_covered([f"127.0.0.1:{port}"], timeout=60)  # it joined and owns everything
        finally:
            member.stop()
        log = c.assigner_processes[0].log_text()
    assert "tls=grpc auth=token" in log


async def test_an_elected_follower_passes_calls_to_its_leader_over_mtls_with_the_token(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    ca = Ca.make(tmp_path)
    (tmp_path / "token").write_text(TOKEN)
    assigners = []
    async with contextlib.AsyncExitStack() as stack:
        for name in ("one", "two"):
            cert = ca.issue(f"assigner-{name}")
            settings = dataclasses.replace(
                FAST,
                grpc_tls_cert=cert.cert,
                grpc_tls_key=cert.key,
                grpc_tls_client_ca=ca.file,
                auth_token_file=str(tmp_path / "token"),
            )
            coordination = EtcdCoordination(parse_endpoints(etcd.endpoint), prefix="/tls-test")
            election = ElectionSettings.for_ttl(2)
            assigners.append(
                await stack.enter_async_context(
                    running_ha_assigner(settings, coordination, election)
                )
            )
        deadline = asyncio.get_running_loop().time() + 10
        while sum(a.leading for a in assigners) != 1:
            assert asyncio.get_running_loop().time() < deadline, "no leader"
            await asyncio.sleep(0.05)
        follower = next(a for a in assigners if not a.leading)
        member_cert = ca.issue("member")
        tls = TlsSettings(ca=ca.file, cert=member_cert.cert, key=member_cert.key)
        channel = open_aio_channel(follower.address, tls=tls, token=TOKEN)
        stack.push_async_callback(channel.close, None)
        member = Member(AssignerCallsAio(channel), "127.0.0.1:9200")
        for _ in range(40):  # through the follower, over mTLS to the leader
            await member.beat()
            if member.held is not None:
                break
            await asyncio.sleep(0.05)
        assert member.held is not None
        assert member.held.servers == {"127.0.0.1:9200"}
        anonymous = open_aio_channel(follower.address, tls=tls)
        stack.push_async_callback(anonymous.close, None)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Member(AssignerCallsAio(anonymous), "127.0.0.1:9201").beat()
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
