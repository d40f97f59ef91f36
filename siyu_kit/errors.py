"""Domain errors. Use cases raise these; the gRPC layer turns them into status codes
with `google.rpc` details, and the gateway into HTTP status codes."""
from __future__ import annotations

from dataclasses import dataclass

import grpc


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, reason: str = "", violations: list[FieldViolation] | None = None,
                 retry_after_s: int = 0):
        super().__init__(message)
        self.message = message
        # A stable machine-readable word such as OUT_OF_STOCK, declared in an ErrorReason
        # enum of the protos (siyu_kit.reasons). Left empty, the caller gets the status
        # code's name (NOT_FOUND, ...) instead; give every new refusal a reason of its own.
        self.reason = reason
        self.violations = list(violations or [])
        # When the caller may try again (google.rpc.RetryInfo; Retry-After at the gateway).
        self.retry_after_s = retry_after_s


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Conflict(DomainError):
    """Compare-and-set lost against a concurrent write."""

    code = grpc.StatusCode.ABORTED


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


# Status details travel in gRPC trailing metadata (16 KiB at most): a request with hundreds
# of bad fields gets the first ones and a count of the rest, each string cut short.
MAX_VIOLATIONS = 20
MAX_FIELD_CHARS = 100
MAX_DESCRIPTION_CHARS = 200


def capped_violations(violations: list[FieldViolation]) -> list[FieldViolation]:
    """The violations a caller is sent: at most MAX_VIOLATIONS, plus one that counts the rest."""
    shown = [FieldViolation(v.field[:MAX_FIELD_CHARS], v.description[:MAX_DESCRIPTION_CHARS])
             for v in violations[:MAX_VIOLATIONS]]
    hidden = len(violations) - len(shown)
    if hidden:
        shown.append(FieldViolation("", f"{hidden} more violations not shown; fix the ones above first"))
    return shown


class Violations:
    """Collects every field violation of a request, then raises them together."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def check(self, ok: bool, field: str, description: str) -> bool:
        if not ok:
            self.add(field, description)
        return ok

    def raise_if_any(self, message: str = "the request has invalid fields") -> None:
        if self.items:
            raise InvalidArgument(message, reason="INVALID_FIELDS", violations=self.items)
