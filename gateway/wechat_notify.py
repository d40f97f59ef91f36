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


_FAIL = {"type": "object", "required": ["code", "message"], "properties": {
    "code": {"type": "string", "enum": ["FAIL"]}, "message": {"type": "string"}}}
_HEADERS = {"Wechatpay-Timestamp": "seconds since the epoch; refused outside a five-minute window",
            "Wechatpay-Nonce": "the signature's nonce; a nonce seen before is a replay",
            "Wechatpay-Signature": "base64 SHA256-RSA over timestamp, nonce and the raw body",
            "Wechatpay-Serial": "the id of WeChat Pay's platform public key that signed it"}
# The callback in the API document, for the operators who register its URL with WeChat Pay.
# Its request and answers are WeChat's, not the gateway's JSON mapping of a service.
OPENAPI_OPERATION = {
    "operationId": "WechatPay_Notify",
    "summary": "WeChat Pay's payment and refund notifications",
    "tags": ["OrderService"],
    "x-siyu-access": "PUBLIC",
    "security": [],
    "description": (
        "Where WeChat Pay posts its notifications (register this URL as notify_url). The body is "
        "verified against WeChat Pay's platform public key over the raw bytes, then its AEAD_AES_256_GCM "
        "resource is decrypted with the merchant's API v3 key; a notification outside the five-minute window, a "
        "replayed nonce, a bad signature or an unknown merchant is refused and changes nothing. 204 means "
        "taken (a payment already applied is answered 204 again); any other answer makes WeChat retry later."),
    "parameters": [{"name": "merchant_id", "in": "path", "required": True,
                    "schema": {"type": "string", "pattern": "^mch_[0-9A-HJKMNP-TV-Z]{26}$"}}] + [
        {"name": name, "in": "header", "required": True, "description": text, "schema": {"type": "string"}}
        for name, text in _HEADERS.items()],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["id", "create_time", "event_type", "resource_type", "resource"],
        "properties": {
            "id": {"type": "string"}, "create_time": {"type": "string"}, "summary": {"type": "string"},
            "event_type": {"type": "string", "description": "TRANSACTION.SUCCESS, REFUND.SUCCESS, …"},
            "resource_type": {"type": "string", "enum": ["encrypt-resource"]},
            "resource": {"type": "object", "required": ["algorithm", "ciphertext", "nonce"], "properties": {
                "algorithm": {"type": "string", "enum": ["AEAD_AES_256_GCM"]},
                "ciphertext": {"type": "string"}, "associated_data": {"type": "string"},
                "original_type": {"type": "string"}, "nonce": {"type": "string"}}}}}}}},
    "responses": {
        "204": {"description": "Taken."},
        **{status: {"description": text, "content": {"application/json": {"schema": _FAIL}}}
           for status, text in (("400", "Malformed, or a notification WeChat should not send again as it is"),
                                ("401", "Signature, timestamp or nonce refused (forged, stale or replayed)"),
                                ("404", "No such merchant, or no WeChat Pay set up for it"),
                                ("500", "Could not be taken now; WeChat retries later"))}},
}


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
