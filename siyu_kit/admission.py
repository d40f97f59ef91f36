"""Bounded in-flight work: a service admits at most SIYU_MAX_IN_FLIGHT calls at once and
answers the rest at once with UNAVAILABLE, reason OVERLOADED and a RetryInfo (the
gateway's 503 with Retry-After), before any of their work starts.

On two cores a few dozen calls keep the event loop, the storage threads and the database
busy; more only wait in line, each holding its caller past its deadline, and calls that
are given up half way cost the work already done. Refusing the excess at the door keeps
the admitted calls fast and lets every caller hear back within its deadline. A call whose
remaining deadline is already too short to be worth starting is refused the same way
(reason DEADLINE_TOO_SHORT): it would be cancelled half way.

Health and reflection are never refused: an orchestrator must see a busy service as
alive, not as down.
"""
from __future__ import annotations

import contextvars
import time

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from prometheus_client import Counter, Gauge

from siyu_kit import config, reasons
from siyu_kit.cancellation import TOO_LATE

OVERLOADED = "OVERLOADED"
# Sized for a service process on two cores: enough to keep its storage threads (16) and
# the database busy, few enough that an admitted call is not queued behind hundreds.
DEFAULT_MAX_IN_FLIGHT = 64
# A call with less left than this would be cut off before it could finish its work.
DEFAULT_MIN_DEADLINE_S = 0.05
# What the caller is told to wait before trying again.
RETRY_AFTER_S = 1

# When the call being served must be answered (time.monotonic()), 0 for no deadline: the
# calls it makes to other services get what is left as their timeout (siyu_kit.clients).
_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("siyu_call_deadline", default=0.0)


def time_left() -> float | None:
    """Seconds left of the deadline of the call being served; None without one."""
    deadline = _deadline.get()
    return deadline - time.monotonic() if deadline else None


IN_FLIGHT = Gauge("siyu_rpc_in_flight", "RPCs being served by this process", ["service"])
REFUSED = Counter("siyu_rpc_refused_total", "RPCs refused at the door", ["service", "reason"])


def refusal(reason: str, message: str, retry_after_s: int = RETRY_AFTER_S) -> status_pb2.Status:
    """UNAVAILABLE with the reason and a RetryInfo, as `grpc_server.status_of` packs them."""
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo(reason=reasons.check(reason),
                                                                              domain="siyu")
    retry.retry_delay.FromSeconds(retry_after_s)
    details = []
    for detail in (retry, info):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=details)


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Admits at most `max_in_flight` siyu RPCs at once; answers the rest at once."""

    def __init__(self, service: str, max_in_flight: int | None = None, min_deadline_s: float | None = None):
        self.service = service
        self.max_in_flight = max_in_flight if max_in_flight is not None else config.env_count(
            "MAX_IN_FLIGHT", DEFAULT_MAX_IN_FLIGHT)
        self.min_deadline_s = min_deadline_s if min_deadline_s is not None else config.env_seconds(
            "MIN_DEADLINE_S", DEFAULT_MIN_DEADLINE_S)
        self.in_flight = 0
        self._gauge = IN_FLIGHT.labels(service)
        self._overloaded = rpc_status.to_status(refusal(OVERLOADED, "the service is busy; retry shortly"))
        self._too_late = rpc_status.to_status(refusal(TOO_LATE, "too little time was left to start the call"))

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or self.max_in_flight <= 0 \
                or not handler_call_details.method.startswith("/siyu."):
            return handler
        inner = handler.unary_unary

        async def admitted(request, servicer_context: grpc.aio.ServicerContext):
            left = servicer_context.time_remaining()
            if left is not None and left < self.min_deadline_s:
                REFUSED.labels(self.service, TOO_LATE).inc()
                await servicer_context.abort_with_status(self._too_late)
            if self.in_flight >= self.max_in_flight:
                REFUSED.labels(self.service, OVERLOADED).inc()
                await servicer_context.abort_with_status(self._overloaded)
            self.in_flight += 1
            self._gauge.inc()
            token = _deadline.set(time.monotonic() + left if left is not None else 0.0)
            try:
                return await inner(request, servicer_context)
            finally:
                _deadline.reset(token)
                self.in_flight -= 1
                self._gauge.dec()

        return grpc.unary_unary_rpc_method_handler(
            admitted, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
