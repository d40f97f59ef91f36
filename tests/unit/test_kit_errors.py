"""Domain errors become gRPC status with google.rpc BadRequest and ErrorInfo details."""
from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from siyu_kit import errors
from siyu_kit.grpc_server import status_of


def _details(status):
    bad, info = None, None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
    return bad, info


def test_violations_become_invalid_argument_with_every_field_violation():
    v = errors.Violations()
    v.check(False, "lines[0].quantity", "must be at least 1")
    v.check(True, "channel", "unused")
    v.add("address.phone", "is not a phone number")
    with pytest.raises(errors.InvalidArgument) as caught:
        v.raise_if_any()
    status = status_of(caught.value, "req_1")
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad, info = _details(status)
    assert [(f.field, f.description) for f in bad.field_violations] == [
        ("lines[0].quantity", "must be at least 1"), ("address.phone", "is not a phone number")]
    assert info.reason == "INVALID_FIELDS"
    assert info.domain == "siyu"
    assert info.metadata["request_id"] == "req_1"


def test_no_violations_raise_nothing():
    errors.Violations().raise_if_any()


@pytest.mark.parametrize("error, code", [
    (errors.NotFound("no such order"), code_pb2.NOT_FOUND),
    (errors.FailedPrecondition("order is paid", reason="ORDER_PAID"), code_pb2.FAILED_PRECONDITION),
    (errors.Conflict("stale version"), code_pb2.ABORTED),
    (errors.AlreadyExists("exists"), code_pb2.ALREADY_EXISTS),
    (errors.ResourceExhausted("no stock", reason="OUT_OF_STOCK"), code_pb2.RESOURCE_EXHAUSTED),
    (errors.Unauthenticated("token expired", reason="TOKEN_EXPIRED"), code_pb2.UNAUTHENTICATED),
    (errors.PermissionDenied("needs OPERATOR"), code_pb2.PERMISSION_DENIED),
    (errors.Unavailable("try later"), code_pb2.UNAVAILABLE),
])
def test_each_error_maps_to_its_status_code_with_error_info(error, code):
    status = status_of(error, "req_2")
    assert status.code == code
    assert status.code == error.code.value[0]
    assert status.message == error.message
    bad, info = _details(status)
    assert bad is None  # no violations, no BadRequest
    assert info.reason == (error.reason or error.code.name)
    assert info.metadata["request_id"] == "req_2"


def test_grpc_codes_match_the_documented_mapping():
    assert errors.InvalidArgument.code is grpc.StatusCode.INVALID_ARGUMENT
    assert errors.Conflict.code is grpc.StatusCode.ABORTED
    assert errors.ResourceExhausted("x", reason="OUT_OF_STOCK").reason == "OUT_OF_STOCK"


# ---- many violations: capped so the status fits gRPC's trailing metadata ----------


def test_the_violations_sent_are_capped_with_a_count_of_the_rest():
    many = [errors.FieldViolation(f"lines[{i}].sku_id", "is required") for i in range(150)]
    sent = errors.capped_violations(many)
    assert len(sent) == errors.MAX_VIOLATIONS + 1
    assert sent[:errors.MAX_VIOLATIONS] == many[:errors.MAX_VIOLATIONS]
    assert sent[-1].field == ""
    assert sent[-1].description.startswith(f"{150 - errors.MAX_VIOLATIONS} more violations not shown")
    assert errors.capped_violations(many[:3]) == many[:3]


def test_a_status_with_hundreds_of_long_violations_stays_small():
    huge = [errors.FieldViolation("f" * 5000 + str(i), "d" * 5000) for i in range(1000)]
    status = status_of(errors.InvalidArgument("m" * 100_000, reason="INVALID_FIELDS", violations=huge), "req_1")
    # gRPC refuses trailing metadata past 16 KiB; the whole status stays well below.
    assert len(status.SerializeToString()) < 8 * 1024
    bad, info = _details(status)
    assert len(bad.field_violations) == errors.MAX_VIOLATIONS + 1
    assert info.reason == "INVALID_FIELDS"


def test_a_reasonless_refusal_carries_its_code_name_and_every_reason_sent_is_declared():
    from structlog.testing import capture_logs

    from siyu_kit import reasons

    with capture_logs() as logs:
        _, info = _details(status_of(errors.NotFound("no such thing"), "req_1"))
        assert info.reason == "NOT_FOUND" and reasons.is_declared(info.reason)
        _, info = _details(status_of(errors.FailedPrecondition("no stock", reason="OUT_OF_STOCK"), "req_1"))
        assert info.reason == "OUT_OF_STOCK"
    assert logs == []


def test_an_undeclared_reason_is_still_sent_but_logged_as_an_error():
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        _, info = _details(status_of(errors.Conflict("lost", reason="KIT_TEST_UNDECLARED"), "req_1"))
    assert info.reason == "KIT_TEST_UNDECLARED"
    assert [(e["event"], e["log_level"], e["reason"]) for e in logs] == [
        ("reason.undeclared", "error", "KIT_TEST_UNDECLARED")]
