"""ReportRoutes: which call a server's reports take, as its answers and failures say."""

from __future__ import annotations

import grpc

from ratekeeper.client.report_routes import HOLD_OFF_NS, MISSES, ReportRoutes, listener_target


def _routes() -> tuple[ReportRoutes[str, str], list[str]]:
    opened: list[str] = []

    def open_(target: str) -> tuple[str, str]:
        opened.append(target)
        return f"channel:{target}", f"call:{target}"

    return ReportRoutes(open_), opened


def test_listener_target_keeps_the_host() -> None:
    assert listener_target("10.0.0.1:8081", 9) == "10.0.0.1:9"
    assert listener_target("[::1]:8081", 9) == "[::1]:9"
    assert listener_target("dns:///svc.local:8081", 9) == "dns:///svc.local:9"


def test_an_answer_naming_a_port_moves_the_reports_there_once() -> None:
    routes, opened = _routes()
    assert routes.call("h:1") is None
    assert routes.heard("h:1", 0, 0, False) == []
    assert routes.call("h:1") is None
    assert routes.heard("h:1", 7, 0, False) == []
    assert routes.call("h:1") == "call:h:7"
    assert routes.heard("h:1", 7, 1, True) == []
    assert opened == ["h:7"]
    # a restarted server names another port: the old channel is handed back to be closed
    assert routes.heard("h:1", 8, 2, True) == ["channel:h:7"]
    assert routes.call("h:1") == "call:h:8"
    # one that no longer has a listener
    assert routes.heard("h:1", 0, 3, False) == ["channel:h:8"]
    assert routes.call("h:1") is None


def test_an_unreachable_listener_is_left_alone_for_a_while() -> None:
    routes, _ = _routes()
    routes.heard("h:1", 7, 0, False)
    assert routes.failed("h:1", grpc.StatusCode.UNAVAILABLE, 10) == ["channel:h:7"]
    assert routes.call("h:1") is None
    routes.heard("h:1", 7, 10 + HOLD_OFF_NS - 1, False)
    assert routes.call("h:1") is None
    routes.heard("h:1", 7, 10 + HOLD_OFF_NS, False)
    assert routes.call("h:1") == "call:h:7"


def test_refusals_and_late_answers_keep_the_listener() -> None:
    routes, _ = _routes()
    routes.heard("h:1", 7, 0, False)
    # never answered: deadlines in a row say the port may be dropped by a firewall
    for _ in range(MISSES - 1):
        assert routes.failed("h:1", grpc.StatusCode.DEADLINE_EXCEEDED, 1) == []
    assert routes.failed("h:1", grpc.StatusCode.DEADLINE_EXCEEDED, 1) == ["channel:h:7"]
    routes.heard("h:1", 7, 1 + HOLD_OFF_NS, False)
    routes.heard("h:1", 7, 2 + HOLD_OFF_NS, True)
    # it has answered: a late answer is the server's load, not the port
    assert routes.failed("h:1", grpc.StatusCode.DEADLINE_EXCEEDED, 3 + HOLD_OFF_NS) == []
    assert routes.failed("h:1", grpc.StatusCode.INVALID_ARGUMENT, 4 + HOLD_OFF_NS) == []
    assert routes.call("h:1") == "call:h:7"
    assert routes.forget({"other:1"}) == ["channel:h:7"]
    assert routes.call("h:1") is None
