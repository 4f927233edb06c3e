"""The one table of errors to gRPC status codes the servicers refuse calls with."""

from __future__ import annotations

import grpc
import pytest

from ratekeeper.errors import BackendError, RequestError
from ratekeeper.protocol.stats import Event, MemoryStats
from ratekeeper.server.refusal import refusal


def test_each_error_has_its_status_and_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    stats = MemoryStats()
    assert refusal(RequestError("bad key"), stats, "report") == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "bad key",
    )
    assert refusal(BackendError("down"), stats, "report") == (
        grpc.StatusCode.UNAVAILABLE,
        "store unavailable: down",
    )
    try:
        raise ZeroDivisionError("bug")
    except ZeroDivisionError as exc:
        refused = refusal(exc, stats, "report")  # inside the except block, as servicers call it
    assert refused == (grpc.StatusCode.INTERNAL, "internal error")
    assert stats.invalid_calls["report"] == 1
    assert stats.events[Event.SERVICE_ERROR] == 1
    assert "report failed" in caplog.text
    assert "ZeroDivisionError: bug" in caplog.text
