"""WeChat Pay's notification callback, POST /v1/payments/wechat/notify/{merchant_id}.

WeChat posts a signed JSON body and four Wechatpay-* headers. The signature covers the raw
body, so it is handed to the order service byte for byte (never re-encoded), with the
headers; the order service verifies, decrypts and applies it. The answer is in WeChat's
documented shape: 204 with no body when taken, else 4xx/5xx with {"code": "FAIL",
"message": …} (WeChat then retries later)."""
from __future__ import annotations

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from siyu.order.v1 import order_pb2
from siyu_kit import logging as slog
from siyu_kit.context import RequestContext

from gateway import errors
from gateway.errors import ApiError

log = slog.get("siyu.gateway.wechat_notify")

PATH = "/v1/payments/wechat/notify/{merchant_id}"
RPC = "/siyu.order.v1.OrderService/HandleWechatPayNotification"
# What WeChat is told for each refusal: a bad request is not worth retrying as it is, a
# service error is.
_CLIENT_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
                  grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
                  grpc.StatusCode.FAILED_PRECONDITION: 400}


def fail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"code": "FAIL", "message": message}, status_code=status)


async def handle(gateway, request: Request, read_body) -> Response:
    """`gateway` is the app's Gateway (its channels and settings); `read_body` its
    size-limited body reader."""
    state = request.scope.setdefault("state", {})
    request_id = state.get("request_id", "")
    state["route"] = f"POST {PATH}"
    merchant_id = request.path_params["merchant_id"]
    state["merchant_id"] = merchant_id
    try:
        raw = await read_body(request)
    except ApiError as error:
        return fail(error.http_status, error.message)
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        return fail(400, "the body is not UTF-8")
    h = request.headers
    message = order_pb2.HandleWechatPayNotificationRequest(
        merchant_id=merchant_id, body=body, timestamp=h.get("wechatpay-timestamp", ""),
        nonce=h.get("wechatpay-nonce", ""), signature=h.get("wechatpay-signature", ""),
        serial=h.get("wechatpay-serial", ""))
    call = gateway.channel("order").unary_unary(
        RPC, request_serializer=order_pb2.HandleWechatPayNotificationRequest.SerializeToString,
        response_deserializer=order_pb2.HandleWechatPayNotificationResponse.FromString)
    metadata = RequestContext(request_id=request_id, calling_service="gateway").to_metadata()
    try:
        await call(message, metadata=metadata, timeout=gateway.settings.deadline_s)
    except grpc.aio.AioRpcError as error:
        status = _CLIENT_ERRORS.get(error.code(), 500)
        reason = errors.from_rpc_error(error).reason or error.code().name
        log.info("wechat_pay.notification_refused", merchant_id=merchant_id, reason=reason, status=status,
                 request_id=request_id)
        return fail(status, reason if status < 500 else "temporarily unavailable; retry")
    return Response(status_code=204)
