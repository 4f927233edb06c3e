"""The report converters: typed values to the wire and back, and what the wire may not carry."""

from __future__ import annotations

import math

import pytest

from ratekeeper.core.instructions import UNBOUNDED, Instruction
from ratekeeper.core.limits import parse_limit
from ratekeeper.errors import RequestError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import (
    answer_from_wire,
    answer_to_wire,
    report_from_wire,
    report_to_wire,
)
from ratekeeper.protocol.report_values import KeyCounts, Report, ReportAnswer

REPORT = Report(
    "client-1",
    (
        KeyCounts("api", (("user", "alice"),), 3, 4, (parse_limit("5/s burst 9"),)),
        KeyCounts("api", (("user", ""), ("path", "/x")), 0, 1),
    ),
    interval_ns=100_000_000,
    sequence=7,
)


def test_a_report_survives_the_wire() -> None:
    wire = pb.ReportRequest.FromString(report_to_wire(REPORT).SerializeToString())
    assert report_from_wire(wire) == REPORT


def test_an_answer_survives_the_wire_and_an_unbounded_rate_is_left_unset() -> None:
    answer = ReportAnswer(
        (
            Instruction(5, 2.5, 300, (parse_limit("10/s"), parse_limit("100/m"))),
            Instruction(0, UNBOUNDED, 300),
        )
    )
    wire = answer_to_wire(answer)
    assert not wire.instructions[1].HasField("admit_rate")
    back = answer_from_wire(pb.ReportResponse.FromString(wire.SerializeToString()))
    assert back.instructions[0] == answer.instructions[0]
    assert math.isinf(back.instructions[1].admit_rate)


def test_an_invalid_inline_limit_is_a_request_error_naming_the_key() -> None:
    bad = pb.KeyReport(domain="d", limits=[pb.LimitSpec(amount=1, unit_seconds=7)])
    request = pb.ReportRequest(client_id="c", keys=[pb.KeyReport(domain="d"), bad])
    with pytest.raises(RequestError, match=r"keys\[1\]: invalid inline limit: unit_seconds 7"):
        report_from_wire(request)
