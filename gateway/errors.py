"""gRPC status → HTTP status and the one JSON error body every failure uses:

    {"error": {"code": "NOT_FOUND", "status": 404, "message": "...", "reason": "...",
               "request_id": "req_…", "field_violations": [{"field": "...", "description": "..."}]}}

`reason` is one of the words the ErrorReason enums of the protos declare (siyu_kit.reasons);
an internal error has none.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from starlette.responses import JSONResponse

from siyu_kit import reasons
from siyu_kit.grpc_server import details_of
from siyu_kit.errors import DomainError, FieldViolation

# google.rpc.Code's documented HTTP mapping (googleapis google/rpc/code.proto). Front ends
# branch on the error's `reason`, not on the status: FAILED_PRECONDITION and
# INVALID_ARGUMENT are both 400, and the reason tells them apart.
HTTP_BY_CODE = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    # The client closed the request before the answer came.
    "CANCELLED": 499,
    "DATA_LOSS": 500,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
# Their messages may carry internals; the caller gets a plain sentence instead.
GENERIC_MESSAGES = {
    "UNAVAILABLE": "the service is temporarily unavailable",
    "DEADLINE_EXCEEDED": "the service did not answer in time",
}
# Every 503 tells the client when to try again: outages the services report are short
# (a restarting database or service), and clients that wait do not pile up on it.
RETRY_AFTER_S = 2


@dataclass
class ApiError(Exception):
    """An error the gateway answers with; `code` is a gRPC status code name."""
    code: str
    message: str
    reason: str = ""
    violations: list[FieldViolation] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def http_status(code: str) -> int:
    return HTTP_BY_CODE.get(code, 500)


def from_domain(error: DomainError) -> ApiError:
    return ApiError(error.code.name, error.message, error.reason, list(error.violations))


def from_status(code: grpc.StatusCode, message: str, trailing_metadata) -> ApiError:
    """A failed gRPC call → ApiError, decoding google.rpc BadRequest and ErrorInfo details."""
    name = code.name
    reason, violations, headers = "", [], {}
    details = details_of(trailing_metadata)
    if name == "RESOURCE_EXHAUSTED" and details is None:
        # Every service error carries details; without them this is gRPC's own limit (an
        # answer or its trailing metadata too large to relay), not a quota the caller can
        # wait out, so it must not read as "retry later".
        return ApiError("INTERNAL", "the service's answer was too large to relay", "RESPONSE_TOO_LARGE")
    if details is not None:
        reason, violations = details.reason, list(details.violations)
        if details.retry_after_s > 0:
            headers["Retry-After"] = str(details.retry_after_s)
    if name == "CANCELLED":
        # A service that resets a call before answering (overload) cancels it from its side;
        # the HTTP client did not give up, so this is the service being away: it may retry.
        name = "UNAVAILABLE"
    if http_status(name) == 500:
        # Internal failures keep their details in the service's log, keyed by request id.
        return ApiError("INTERNAL", "internal error", "")
    return ApiError(name, GENERIC_MESSAGES.get(name, message or name.replace("_", " ").lower()), reason, violations,
                    headers)


def from_rpc_error(error: grpc.RpcError) -> ApiError:
    return from_status(error.code(), error.details() or "", error.trailing_metadata())


def body(error: ApiError, request_id: str) -> dict:
    out = {"code": error.code, "status": error.http_status, "message": error.message,
           "request_id": request_id}
    if error.reason:
        # A word of the ErrorReason enums (the document's Error schema lists them).
        out["reason"] = reasons.check(error.reason)
    if error.violations:
        out["field_violations"] = [{"field": v.field, "description": v.description} for v in error.violations]
    return {"error": out}


def response(error: ApiError, request_id: str) -> JSONResponse:
    headers = dict(error.headers)
    if error.http_status == 503:
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    return JSONResponse(body(error, request_id), status_code=error.http_status, headers=headers or None)
