"""The operator page's HTTP side over real loopback: where it is served, its token, its files."""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from ratekeeper.server.app import Replica, build
from ratekeeper.server.operator_page import OPERATOR_PATHS, SNAPSHOT_PATH, STATIC_FILES
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.transport.channels import open_aio_channel
from tests.server.conftest import Running, Start, descriptor
from tests.server.test_slicelet import ASSIGNER, cluster, slicelet_of, until

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
domain: rl
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 1}
"""
TOKEN = "operator-token-0123456789"


def admin_url(running: Running, path: str) -> str:
    return f"http://127.0.0.1:{running.server.admin_port}{path}"


async def test_the_page_is_off_without_an_admin_listener(serve: Start) -> None:
    running = await serve(CONFIG)
    assert running.server.components.operator is None
    for path in OPERATOR_PATHS:
        async with running.http.get(running.base_url + path) as response:
            assert response.status == 404, path


async def test_the_page_is_served_on_the_admin_listener_only(serve: Start) -> None:
    running = await serve(CONFIG, admin_listen="127.0.0.1:0")
    for path in OPERATOR_PATHS:
        async with running.http.get(running.base_url + path) as response:
            assert response.status == 404, path
    for path, (_, kind) in STATIC_FILES.items():
        async with running.http.get(admin_url(running, path)) as response:
            assert response.status == 200, path
            assert response.content_type == kind
            # nothing from any other origin, never framed
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    async with running.http.get(admin_url(running, "/operator")) as response:
        html = await response.text()
    assert '<script src="/operator/operator.js"' in html
    assert "http" not in html.replace('lang="en"', "")  # no address of another host


async def test_the_snapshot_shows_a_key_a_report_answer_rejects(serve: Start) -> None:
    running = await serve(CONFIG, admin_listen="127.0.0.1:0")
    key = pb.KeyReport(domain="rl", entries=[pb.Entry(key="user", value="alice")], admitted=30)
    channel = open_aio_channel(f"127.0.0.1:{running.server.grpc_port}")
    try:
        call = aio_report_call(channel)
        for client in ("web-a", "web-b"):
            answer = await call(pb.ReportRequest(client_id=client, sequence=1, keys=[key]))
            assert answer.instructions[0].reject_for_ns > 0
    finally:
        await channel.close()
    for _ in range(3):  # an RLS rule over its limit
        await running.ask("rl", descriptor(("remote_address", "203.0.113.7")))
    async with running.http.get(admin_url(running, SNAPSHOT_PATH)) as response:
        assert response.status == 200
        doc = await response.json()
    (limited,) = doc["limited"]
    assert limited["key"] == "rl: user=alice"
    assert limited["limits"] == ["5/minute"]
    assert limited["admitted"] == 60
    assert {c["id"] for c in doc["clients"]} == {"web-a", "web-b"}
    (rule,) = doc["rules"]
    assert (rule["key"], rule["over_limit"]) == ("rl.remote_address", 2)
    assert doc["store"]["pressure"]["held"] >= 2
    assert doc["cluster"] is None


async def test_the_snapshot_requires_the_token_and_the_page_itself_does_not(
    serve: Start, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    running = await serve(CONFIG, admin_listen="127.0.0.1:0", auth_token_file=str(token_file))
    async with running.http.get(admin_url(running, SNAPSHOT_PATH)) as response:
        assert response.status == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with running.http.get(admin_url(running, SNAPSHOT_PATH), headers=headers) as response:
        assert response.status == 200
    for path in STATIC_FILES:  # no data in them: the script asks for the token
        async with running.http.get(admin_url(running, path)) as response:
            assert response.status == 200


def test_the_static_files_are_package_data_of_the_wheel() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["ratekeeper"]
    for name, _ in STATIC_FILES.values():
        path = f"server/static/{name}"
        assert (ROOT / "src" / "ratekeeper" / path).is_file()
        assert any(fnmatch.fnmatch(path, glob) for glob in globs), path


@pytest.fixture
async def members(tmp_path: Path) -> AsyncIterator[list[Replica]]:
    """Two in-process cluster members with the page on, the first embedding the assigner."""
    (tmp_path / "rl.yaml").write_text(CONFIG)
    started: list[Replica] = []
    for _ in range(2):
        settings = with_options(
            ServerSettings(), grpc_port=0, http_port=0, config=str(tmp_path),
            admin_listen="127.0.0.1:0",
        )  # fmt: skip
        if started:  # joins through the first
            settings = dataclasses.replace(
                settings, cluster=cluster(slicelet_of(started[0]).address)
            )
        else:
            embedded = cluster("", assigner_embedded=True, assigner=ASSIGNER)
            settings = dataclasses.replace(settings, cluster=embedded)
        replica = Replica(build(settings))
        await replica.start()
        started.append(replica)
    yield started
    for replica in reversed(started):
        await replica.stop(0)


async def test_a_cluster_member_shows_the_members_their_slices_and_its_load(
    members: list[Replica],
) -> None:
    first = members[0]
    names = {slicelet_of(m).address for m in members}

    def both_hold_it() -> bool:
        held = [slicelet_of(m).assignment for m in members]
        return held[0] is not None and held[0] == held[1] and held[0].servers == names

    await until(both_hold_it)
    url = f"http://127.0.0.1:{first.admin_port}{SNAPSHOT_PATH}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        doc = (await response.json())["cluster"]
    assert doc["address"] == slicelet_of(first).address
    assert doc["state"] == "running"
    assert {m["address"] for m in doc["members"]} == names
    assert all(m["slices"] >= 1 for m in doc["members"])
    assert abs(sum(m["share"] for m in doc["members"]) - 1.0) < 1e-9
    assert doc["generation"] is not None
    assert any(piece["mine"] for piece in doc["load"])
