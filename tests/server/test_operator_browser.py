"""The operator page in a real browser: headless Chromium (Debian's ``chromium``, installed by
``make sysdeps``) loads it from a real ``ratekeeper serve`` under real traffic — Limiters whose
reports drive a key over its limit, RLS calls over a rule's limit — and the page, once its
script has run, shows that key as limited with a plot of points, the rule, and the clients.

``RATEKEEPER_OPERATOR_SCREENSHOT=docs/img/operator.png`` also writes the page's screenshot
there (how docs/operations.md's picture is made).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

import ratekeeper
from ratekeeper.server.operator_page import SNAPSHOT_PATH
from ratekeeper.testing.procs import ToolMissing, free_port
from ratekeeper.testing.server_process import RatekeeperServer, ratekeeper_server

pytestmark = pytest.mark.integration

CONFIG = """
domain: rl
descriptors:
  - key: user
    rate_limit: {unit: second, requests_per_unit: 5}
  - key: remote_address
    rate_limit: {unit: minute, requests_per_unit: 3}
"""
TOKEN = "operator-browser-token-0123"
CLIENTS = ("web-0", "web-1", "web-2")
#: Seconds of traffic before the page is loaded: a few complete 2 s buckets.
TRAFFIC_S = 6.0


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise ToolMissing("chromium is not installed (make sysdeps, or apt-get install chromium)")
    return path


def wait_for_members(url: str, timeout: float = 30.0) -> None:
    """Until the snapshot at ``url`` lists a cluster member."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(url, timeout=5) as answer:
            cluster = json.load(answer).get("cluster")
        if cluster and cluster.get("members"):
            return
        assert time.monotonic() < deadline, f"no member in the snapshot after {timeout} s"
        time.sleep(0.2)


def browse(url: str, work: Path, *, screenshot: Path | None = None) -> str:
    """The DOM of ``url`` after its scripts ran (5 s of virtual time), or write a screenshot."""
    argv = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars", f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=5000",
    ]  # fmt: skip
    if screenshot is not None:
        argv += ["--window-size=1280,1500", f"--screenshot={screenshot}"]
    else:
        argv.append("--dump-dom")
    done = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=90, check=False, cwd=work
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    #: The attributes of every enclosing element, outermost first.
    parents: list[dict[str, str]]


class Elements(HTMLParser):
    """Every element of a document with its attributes and its ancestors'."""

    VOID = frozenset({"meta", "link", "input", "br", "img", "hr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[Element] = []
        self._open: list[tuple[str, dict[str, str]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.found.append(Element(tag, values, [a for _, a in self._open]))
        if tag not in self.VOID:
            self._open.append((tag, values))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def having(self, **attrs: str) -> list[Element]:
        name = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [e for e in self.found if name.items() <= e.attrs.items()]


def traffic(server: RatekeeperServer, stop: threading.Event) -> None:
    """Three Limiters on one key (each admits at the policy's pace locally, so together they
    overshoot and their reports are answered with rejection periods), and RLS calls past a
    rule's limit, until ``stop``."""
    limiters = [
        ratekeeper.Limiter(server.grpc_target, domain="rl", client_id=c, auth_token=TOKEN)
        for c in CLIENTS
    ]
    channel = grpc.insecure_channel(server.grpc_target)
    rls = rls_pb2_grpc.RateLimitServiceStub(channel)
    entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="remote_address", value="203.0.113.7")
    request = rls_pb2.RateLimitRequest(
        domain="rl", descriptors=[ratelimit_pb2.RateLimitDescriptor(entries=[entry])]
    )
    try:
        while not stop.wait(0.01):
            for limiter in limiters:
                limiter.allow((("user", "alice"),))
            rls.ShouldRateLimit(request, timeout=5)
    finally:
        channel.close()
        for limiter in limiters:
            limiter.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RatekeeperServer, str]]:
    """A server with the page on its admin port, under traffic; and the page's address."""
    chromium()
    work = tmp_path_factory.mktemp("operator")
    config = work / "rl.yaml"
    config.write_text(CONFIG)
    (work / "token").write_text(TOKEN)
    admin = free_port()
    flags = ["--admin-listen", f"127.0.0.1:{admin}", "--auth-token-file", str(work / "token")]
    with ratekeeper_server(config, work, flags=flags) as server:
        stop = threading.Event()
        thread = threading.Thread(target=traffic, args=(server, stop), daemon=True)
        thread.start()
        try:
            stop.wait(TRAFFIC_S)
            yield server, f"http://127.0.0.1:{admin}/operator"
        finally:
            stop.set()
            thread.join(timeout=30)


def test_the_page_shows_the_limited_key_its_plot_the_rule_and_the_clients(
    running: tuple[RatekeeperServer, str], tmp_path: Path
) -> None:
    _, url = running
    page = Elements(browse(f"{url}#token={TOKEN}", tmp_path))
    (body,) = [e for e in page.found if e.tag == "body"]
    assert body.attrs["data-state"] == "ready", body.attrs
    (limited,) = page.having(data_key="rl: user=alice")
    assert "limited" in limited.attrs["class"]
    # its plot, with points, admitted and rejected per bucket against the policy's line
    plots = [
        e for e in page.found if e.tag == "svg" and limited.attrs in e.parents
    ]  # the plot inside the key's row
    (plot,) = plots
    assert int(plot.attrs["data-points"]) >= 2
    (admitted,) = [
        e for e in page.found if e.tag == "polyline" and "admitted" in e.attrs["class"]
        and limited.attrs in e.parents
    ]  # fmt: skip
    assert len(admitted.attrs["points"].split()) == int(plot.attrs["data-points"])
    assert any(e.tag == "line" and e.attrs.get("class") == "policy" for e in page.found)
    # the RLS rule over its limit, and every reporting client
    assert page.having(data_key="rl.remote_address", data_domain="rl")
    shown = {e.attrs["data-client"] for e in page.found if "data-client" in e.attrs}
    assert shown >= set(CLIENTS)
    assert page.having(id="pressure")
    screenshot = os.environ.get("RATEKEEPER_OPERATOR_SCREENSHOT")
    target = Path(screenshot) if screenshot else tmp_path / "operator.png"
    browse(f"{url}#token={TOKEN}", tmp_path, screenshot=target.resolve())
    assert target.stat().st_size > 10_000


def test_without_the_token_the_page_asks_for_it(
    running: tuple[RatekeeperServer, str], tmp_path: Path
) -> None:
    _, url = running
    page = Elements(browse(url, tmp_path))
    (body,) = [e for e in page.found if e.tag == "body"]
    assert body.attrs["data-state"] == "unauthorized"
    (form,) = page.having(id="token-form")
    assert "hidden" not in form.attrs
    assert not page.having(data_key="rl: user=alice")


def test_a_cluster_member_s_page_shows_its_members_and_slices(tmp_path: Path) -> None:
    chromium()
    config = tmp_path / "rl.yaml"
    config.write_text(CONFIG)
    admin = free_port()
    flags = ["--admin-listen", f"127.0.0.1:{admin}", "--assigner-embedded", "true"]
    with ratekeeper_server(config, tmp_path, flags=flags) as server:
        # The page shows the assignment as it is at load time: wait until the embedded assigner
        # has made its first (a server is ready before its member has heartbeated and been
        # assigned slices; under load that takes a few heartbeat intervals).
        wait_for_members(f"http://127.0.0.1:{admin}{SNAPSHOT_PATH}")
        page = Elements(browse(f"http://127.0.0.1:{admin}/operator", tmp_path))
        members = [e.attrs["data-member"] for e in page.found if "data-member" in e.attrs]
        assert members == [f"127.0.0.1:{server.grpc_port}"]
        assert [e for e in page.found if e.attrs.get("class") == "slice"]
