"""The gRPC side of every service: the interceptor that sets the request context,
enforces the access rule, logs, times and maps domain errors to `google.rpc.Status`, and
a dependency that is away (MongoDB, NATS, another service) to UNAVAILABLE."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

import grpc
import nats.errors
import nats.js.errors
import pymongo.errors
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from siyu_kit import access, context, field_rules, logging as slog, reasons, trust
from siyu_kit.errors import DomainError, FieldViolation, Unavailable, capped_violations
from siyu_kit.ids import new_id
from siyu_kit.metrics import RPC_LATENCY

log = slog.get("siyu.rpc")

# The status travels in trailing metadata, which gRPC refuses past 16 KiB (grpc-message
# included); a long message is cut so the whole status stays far below that.
MAX_MESSAGE_CHARS = 500

# MongoDB server error codes that mean "not now" (shutdown, step-down, time limit), after
# the driver's own connection, selection and network errors.
_MONGO_TRANSIENT_CODES = {6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
_NATS_AWAY = (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
              nats.errors.ConnectionDrainingError, nats.errors.NoServersError, nats.errors.TimeoutError,
              nats.errors.StaleConnectionError, nats.errors.OutboundBufferLimitError,
              nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError,
              nats.js.errors.NoStreamResponseError)
_CALL_AWAY = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def dependency_away(error: BaseException) -> Unavailable | None:
    """The UNAVAILABLE a caller gets when `error` says a dependency is away, else None.
    The message is plain: the driver's text (hosts, topology) stays in the log."""
    if isinstance(error, (pymongo.errors.ConnectionFailure, pymongo.errors.ExecutionTimeout,
                          pymongo.errors.WTimeoutError)) or (
            isinstance(error, pymongo.errors.OperationFailure)
            and (error.code in _MONGO_TRANSIENT_CODES or error.has_error_label("RetryableWriteError"))):
        return Unavailable("the database is temporarily unavailable; retry shortly", reason="STORAGE_UNAVAILABLE")
    if isinstance(error, _NATS_AWAY):
        return Unavailable("event delivery is temporarily unavailable; retry shortly", reason="EVENTS_UNAVAILABLE")
    if isinstance(error, grpc.aio.AioRpcError) and error.code() in _CALL_AWAY:
        return Unavailable("a dependency is temporarily unavailable; retry shortly", reason="DEPENDENCY_UNAVAILABLE")
    return None


def status_of(error: DomainError, request_id: str) -> status_pb2.Status:
    details = []
    if error.violations:
        bad = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in capped_violations(error.violations)
        ])
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    if error.retry_after_s > 0:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromSeconds(int(error.retry_after_s))
        packed = any_pb2.Any()
        packed.Pack(retry)
        details.append(packed)
    # A refusal without a reason of its own carries its status code's name; both kinds are
    # declared words (siyu_kit.reasons), and an undeclared one is logged as an error.
    info = error_details_pb2.ErrorInfo(reason=reasons.check(error.reason or error.code.name), domain="siyu",
                                       metadata={"request_id": request_id})
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    return status_pb2.Status(code=error.code.value[0], message=error.message[:MAX_MESSAGE_CHARS],
                             details=details)


# Where gRPC carries google.rpc.Status (with its details) in the trailing metadata.
STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class StatusDetails:
    """What a refusal carried besides its code, as `status_of` packed it."""
    reason: str = ""
    violations: tuple[FieldViolation, ...] = ()
    retry_after_s: int = 0


def details_of(trailing_metadata) -> StatusDetails | None:
    """The reason, field violations and retry delay of a peer's refusal; None when it
    carried no details, or details that cannot be read (the code still counts)."""
    for key, value in trailing_metadata or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # noqa: BLE001 - malformed details are ignored
            return None
        reason, violations, retry_after_s = "", [], 0
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after_s = max(0, int(retry.retry_delay.seconds))
        return StatusDetails(reason, tuple(violations), retry_after_s)
    return None


class ContextInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str):
        self.service = service

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        # Health and reflection are not ours and carry no rule; every siyu RPC has one.
        rule = access.rule_for_path(method) if method.startswith("/siyu.") else None
        inner = handler.unary_unary
        service = self.service
        rpc_name = method.rsplit("/", 1)[-1]

        async def behaviour(request, servicer_context: grpc.aio.ServicerContext):
            metadata = servicer_context.invocation_metadata()
            refused = None
            try:
                # Identity headers count only when a peer holding the internal key vouches for them.
                trust.verify(metadata)
                ctx = replace(context.RequestContext.from_metadata(metadata), rpc=rpc_name)
            except DomainError as error:
                refused = error
                ctx = context.RequestContext(request_id=new_id("req"), rpc=rpc_name)
            token = context.use(ctx)
            structlog.contextvars.bind_contextvars(
                request_id=ctx.request_id, merchant_id=ctx.merchant_id, channel=ctx.channel, method=method)
            started = time.perf_counter()
            code = "OK"
            try:
                if refused is not None:
                    raise refused
                if rule is not None:
                    access.check(rule, ctx)
                    field_rules.check(request)
                return await inner(request, servicer_context)
            except DomainError as error:
                code = error.code.name
                log.info("rpc.rejected", code=code, message=error.message, reason=error.reason)
                await servicer_context.abort_with_status(rpc_status.to_status(status_of(error, ctx.request_id)))
            except grpc.aio.AbortError:
                code = "ABORTED_BY_HANDLER"
                raise
            except asyncio.CancelledError:
                # The caller gave up (deadline or cancel); whatever ran so far stays done.
                code = "CANCELLED"
                raise
            except NotImplementedError:
                # An RPC the contract declares and this service does not answer yet (the
                # generated servicer's default): UNIMPLEMENTED, as gRPC itself says, not a bug.
                code = "UNIMPLEMENTED"
                await servicer_context.abort_with_status(rpc_status.to_status(status_pb2.Status(
                    code=code_pb2.UNIMPLEMENTED, message=f"{rpc_name} is not implemented by this service")))
            except Exception as error:
                away = dependency_away(error)
                if away is None:
                    code = "INTERNAL"
                    log.exception("rpc.failed")
                    status = status_pb2.Status(code=code_pb2.INTERNAL,
                                               message=f"internal error (request {ctx.request_id})")
                else:
                    # The database, NATS or another service is away: the caller may retry.
                    code = "UNAVAILABLE"
                    log.warning("rpc.unavailable", error=repr(error)[:300])
                    status = status_of(away, ctx.request_id)
                await servicer_context.abort_with_status(rpc_status.to_status(status))
            finally:
                elapsed = time.perf_counter() - started
                RPC_LATENCY.labels(service, method, code).observe(elapsed)
                log.info("rpc", code=code, latency_ms=round(elapsed * 1000, 2),
                         caller=ctx.caller_kind, from_service=ctx.calling_service)
                structlog.contextvars.unbind_contextvars("request_id", "merchant_id", "channel", "method")
                context.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
