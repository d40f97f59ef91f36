"""gRPC status → HTTP status and the JSON error body, with google.rpc details decoded."""
from __future__ import annotations

import grpc
import pytest

from gateway import errors
from siyu_kit.errors import FailedPrecondition, FieldViolation, InvalidArgument, ResourceExhausted
from siyu_kit.grpc_server import status_of

EXPECTED = {
    "INVALID_ARGUMENT": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "ABORTED": 409, "FAILED_PRECONDITION": 400,
    "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
    "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500, "UNIMPLEMENTED": 501, "CANCELLED": 499,
}


@pytest.mark.parametrize("code,status", EXPECTED.items())
def test_status_codes(code, status):
    assert errors.http_status(code) == status


def _trailers(error):
    """What a service's interceptor puts into the trailing metadata for a domain error."""
    return (("grpc-status-details-bin", status_of(error, "req_1").SerializeToString()),)


def test_field_violations_and_reason_are_decoded():
    domain = InvalidArgument("the request has invalid fields", reason="INVALID_FIELDS",
                             violations=[FieldViolation("lines[0].quantity", "must be positive"),
                                         FieldViolation("idempotency_key", "is required")])
    api = errors.from_status(grpc.StatusCode.INVALID_ARGUMENT, domain.message, _trailers(domain))
    body = errors.body(api, "req_abc")["error"]
    assert body == {
        "code": "INVALID_ARGUMENT", "status": 400, "message": "the request has invalid fields",
        "reason": "INVALID_FIELDS", "request_id": "req_abc",
        "field_violations": [{"field": "lines[0].quantity", "description": "must be positive"},
                             {"field": "idempotency_key", "description": "is required"}],
    }


def test_reason_without_violations():
    domain = ResourceExhausted("sku_1 is sold out", reason="OUT_OF_STOCK")
    api = errors.from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, domain.message, _trailers(domain))
    body = errors.body(api, "r")["error"]
    assert (body["status"], body["reason"], body["message"]) == (429, "OUT_OF_STOCK", "sku_1 is sold out")
    assert "field_violations" not in body
    api = errors.from_status(grpc.StatusCode.FAILED_PRECONDITION, "x",
                             _trailers(FailedPrecondition("x", reason="ORDER_NOT_PENDING")))
    assert (api.http_status, api.reason) == (400, "ORDER_NOT_PENDING")


def test_internal_errors_hide_their_message():
    api = errors.from_status(grpc.StatusCode.INTERNAL, "Traceback: KeyError at /srv/app.py", ())
    body = errors.body(api, "r")["error"]
    assert body["status"] == 500 and "Traceback" not in body["message"]
    api = errors.from_status(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; 10.0.0.3", ())
    assert api.http_status == 503 and "10.0.0.3" not in api.message


def test_garbage_details_still_map_the_code():
    api = errors.from_status(grpc.StatusCode.NOT_FOUND, "no such order", (("grpc-status-details-bin", b"\xff\x00"),))
    assert (api.http_status, api.message, api.violations) == (404, "no such order", [])


def test_the_body_carries_a_declared_reason_and_logs_an_undeclared_one():
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        known = errors.body(errors.ApiError("RESOURCE_EXHAUSTED", "slow down", "RATE_LIMITED"), "req_1")
        unknown = errors.body(errors.ApiError("NOT_FOUND", "gone", "GATEWAY_TEST_UNDECLARED"), "req_1")
        internal = errors.body(errors.ApiError("INTERNAL", "internal error"), "req_1")
    assert known["error"]["reason"] == "RATE_LIMITED"
    assert unknown["error"]["reason"] == "GATEWAY_TEST_UNDECLARED"
    assert "reason" not in internal["error"]
    assert [(e["event"], e["reason"]) for e in logs] == [("reason.undeclared", "GATEWAY_TEST_UNDECLARED")]
