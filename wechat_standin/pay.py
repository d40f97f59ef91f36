"""WeChat Pay API v3 endpoints of the stand-in, at api.mch.weixin.qq.com's paths:

- POST /v3/pay/transactions/jsapi                         JSAPI prepay → prepay_id
- GET  /v3/pay/transactions/out-trade-no/{no}?mchid=      the trade (404 ORDER_NOT_EXIST)
- POST /v3/refund/domestic/refunds                        a refund, idempotent by out_refund_no
                                                          (the same number for another trade or
                                                          amount: 400 INVALID_REQUEST); answered
                                                          PROCESSING, as WeChat does
- GET  /v3/refund/domestic/refunds/{out_refund_no}        the refund (404 RESOURCE_NOT_EXISTS)

Every request must carry a valid `WECHATPAY2-SHA256-RSA2048` Authorization signed with the
merchant's registered key (401 SIGN_ERROR otherwise); every answer is signed with the
platform key the stand-in generates at start (Wechatpay-Timestamp/Nonce/Signature/Serial).
Refusals are WeChat's shape: {"code": …, "message": …} with a 4xx/5xx status.

Test controls (under /_standin/pay/):
- POST /merchants {mchid, appid, api_v3_key?}: registers a merchant, generating its API
  key pair and serial as WeChat's merchant platform does; returns everything a merchant
  enters into Siyu (private key, serial, API v3 key, platform public key and its id).
- GET  /platform-key: the platform public key and its id.
- POST /{prepay_id}/complete {notify?: true}: the payer pays; the signed, encrypted
  notification is posted to the trade's notify_url (unless notify is false) and returned.
- POST /{prepay_id}/notification {timestamp?, trade_state?}: a correctly signed and
  encrypted notification of the trade, neither sent nor changing anything (for tests
  that replay, age or tamper with one).
- GET  /refunds?mchid=&out_trade_no=: the refunds made of a trade.
- POST /refunds/{out_refund_no}/settle {status: SUCCESS|ABNORMAL|CLOSED, notify?: true}:
  WeChat finishes the refund; the signed, encrypted REFUND.<status> notification is posted
  to the refund's notify_url (unless notify is false) and returned.
- POST /refunds/{out_refund_no}/notification {status?, timestamp?}: a correctly signed
  and encrypted REFUND.* notification of the refund, neither sent nor changing anything.
"""
from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
CLOCK_SKEW_S = 300
_OUT_NO = re.compile(r"^[A-Za-z0-9_\-|*@]{6,64}$")
_CN = timezone(timedelta(hours=8))


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _pem_public(key) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), SHA256())).decode()


def _verifies(public_key, message: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message.encode(), padding.PKCS1v15(), SHA256())
        return True
    except (InvalidSignature, ValueError):
        return False


def _now_text() -> str:
    return datetime.now(_CN).replace(microsecond=0).isoformat()


@dataclass
class Merchant:
    mchid: str
    appid: str
    serial_no: str
    api_v3_key: str
    key: rsa.RSAPrivateKey


@dataclass
class Trade:
    mchid: str
    appid: str
    out_trade_no: str
    description: str
    notify_url: str
    total: int
    currency: str
    openid: str
    prepay_id: str
    state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: str = ""
    refunds: list[dict] = field(default_factory=list)

    def body(self) -> dict:
        data = {"appid": self.appid, "mchid": self.mchid, "out_trade_no": self.out_trade_no, "trade_type": "JSAPI",
                "trade_state": self.state, "trade_state_desc": "支付成功" if self.state == "SUCCESS" else "未支付",
                "payer": {"openid": self.openid},
                "amount": {"total": self.total, "currency": self.currency}}
        if self.state == "SUCCESS":
            data.update(transaction_id=self.transaction_id, success_time=self.success_time, bank_type="OTHERS")
            data["amount"].update(payer_total=self.total, payer_currency=self.currency)
        return data


@dataclass
class PayState:
    platform_key: rsa.RSAPrivateKey = field(default_factory=_new_key)
    platform_key_id: str = field(default_factory=lambda: "PUB_KEY_ID_" + secrets.token_hex(12).upper())
    merchants: dict[str, Merchant] = field(default_factory=dict)
    trades: dict[tuple[str, str], Trade] = field(default_factory=dict)
    by_prepay: dict[str, tuple[str, str]] = field(default_factory=dict)
    refunds: dict[tuple[str, str], dict] = field(default_factory=dict)
    # How many refund requests asked to move money, and how many did (for tests).
    refund_requests: int = 0
    # Per refund, what is not in WeChat's answer: the merchant and the notify_url given.
    refund_extra: dict[tuple[str, str], dict] = field(default_factory=dict)
    # Refund queries answered (for tests).
    refund_queries: int = 0

    def signed(self, body: dict | None, status: int = 200) -> Response:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":")) if body is not None else ""
        ts, nonce = str(int(time.time())), secrets.token_hex(16)
        headers = {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": self.platform_key_id,
                   "Wechatpay-Signature": _sign(self.platform_key, f"{ts}\n{nonce}\n{text}\n"),
                   "Request-ID": uuid.uuid4().hex}
        if body is None:
            return Response(status_code=status, headers=headers)
        return Response(text, status_code=status, headers=headers, media_type="application/json")

    def fail(self, status: int, code: str, message: str) -> Response:
        return self.signed({"code": code, "message": message}, status)

    def notification(self, trade: Trade, timestamp: int | None = None, trade_state: str | None = None) -> dict:
        resource = trade.body()
        if trade_state:
            resource["trade_state"] = trade_state
            if trade_state == "SUCCESS" and not resource.get("transaction_id"):
                resource["transaction_id"] = "42" + secrets.token_hex(13)
        return self._notify(self.merchants[trade.mchid], trade.notify_url, resource, "transaction",
                            "TRANSACTION.SUCCESS", "支付成功", timestamp)

    def refund_notification(self, refund: dict, status: str | None = None, timestamp: int | None = None) -> dict:
        """REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED: the resource is the refund in
        the notification's shape (refund_status, user_received_account, amount)."""
        status = status or refund["status"]
        resource = {"mchid": refund["mchid"], "out_trade_no": refund["out_trade_no"],
                    "transaction_id": refund["transaction_id"], "out_refund_no": refund["out_refund_no"],
                    "refund_id": refund["refund_id"], "refund_status": status,
                    "user_received_account": refund["user_received_account"],
                    "amount": {k: refund["amount"][k] for k in ("total", "refund", "payer_total", "payer_refund")}}
        if status == "SUCCESS":
            resource["success_time"] = refund.get("success_time") or _now_text()
        summary = {"SUCCESS": "退款成功", "ABNORMAL": "退款异常", "CLOSED": "退款关闭"}.get(status, "退款")
        return self._notify(self.merchants[refund["mchid"]], refund.get("notify_url", ""), resource, "refund",
                            f"REFUND.{status}", summary, timestamp)

    def _notify(self, merchant: Merchant, url: str, resource: dict, original_type: str, event_type: str,
                summary: str, timestamp: int | None) -> dict:
        nonce = secrets.token_hex(6)
        box = AESGCM(merchant.api_v3_key.encode()).encrypt(
            nonce.encode(), json.dumps(resource, ensure_ascii=False).encode(), original_type.encode())
        body = json.dumps({
            "id": str(uuid.uuid4()), "create_time": _now_text(), "resource_type": "encrypt-resource",
            "event_type": event_type, "summary": summary,
            "resource": {"original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                         "ciphertext": base64.b64encode(box).decode(), "associated_data": original_type,
                         "nonce": nonce}}, ensure_ascii=False, separators=(",", ":"))
        ts, hnonce = str(timestamp if timestamp is not None else int(time.time())), secrets.token_hex(16)
        headers = {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": hnonce, "Wechatpay-Serial": self.platform_key_id,
                   "Wechatpay-Signature": _sign(self.platform_key, f"{ts}\n{hnonce}\n{body}\n"),
                   "Content-Type": "application/json"}
        return {"url": url, "headers": headers, "body": body}


def _pay(request: Request) -> PayState:
    return request.app.state.standin_pay


def _authorize(request: Request, state: PayState, raw: str) -> tuple[Merchant | None, Response | None]:
    header = request.headers.get("authorization", "")
    scheme, _, rest = header.partition(" ")
    fields = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep and len(value) >= 2 and value[0] == value[-1] == '"':
            fields[name] = value[1:-1]
    needed = ("mchid", "nonce_str", "signature", "timestamp", "serial_no")
    if scheme != SCHEMA or any(not fields.get(n) for n in needed):
        return None, state.fail(401, "SIGN_ERROR", "Authorization header is missing or malformed")
    merchant = state.merchants.get(fields["mchid"])
    if merchant is None:
        return None, state.fail(401, "SIGN_ERROR", "unknown mchid")
    if fields["serial_no"] != merchant.serial_no:
        return None, state.fail(401, "SIGN_ERROR", "serial_no is not the merchant's certificate")
    ts = fields["timestamp"]
    if not ts.isdigit() or abs(time.time() - int(ts)) > CLOCK_SKEW_S:
        return None, state.fail(401, "SIGN_ERROR", "timestamp is outside the allowed window")
    url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    message = f"{request.method}\n{url}\n{ts}\n{fields['nonce_str']}\n{raw}\n"
    if not _verifies(merchant.key.public_key(), message, fields["signature"]):
        return None, state.fail(401, "SIGN_ERROR", "signature does not verify")
    return merchant, None


async def _body(request: Request) -> tuple[str, dict | None]:
    raw = (await request.body()).decode("utf-8", errors="replace")
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return raw, None
    return raw, data if isinstance(data, dict) else None


async def jsapi(request: Request) -> Response:
    state = _pay(request)
    raw, data = await _body(request)
    merchant, refused = _authorize(request, state, raw)
    if refused:
        return refused
    if data is None:
        return state.fail(400, "PARAM_ERROR", "the body is not a JSON object")
    amount, payer = data.get("amount") or {}, data.get("payer") or {}
    problems = [name for name, ok in (
        ("appid", data.get("appid") == merchant.appid), ("mchid", data.get("mchid") == merchant.mchid),
        ("description", isinstance(data.get("description"), str) and 0 < len(data["description"]) <= 127),
        ("out_trade_no", isinstance(data.get("out_trade_no"), str) and bool(_OUT_NO.match(data["out_trade_no"]))),
        ("notify_url", isinstance(data.get("notify_url"), str) and data["notify_url"].startswith(("http://", "https://"))),
        ("amount.total", isinstance(amount.get("total"), int) and amount["total"] > 0),
        ("amount.currency", amount.get("currency", "CNY") == "CNY"),
        ("payer.openid", isinstance(payer.get("openid"), str) and 0 < len(payer["openid"]) <= 128)) if not ok]
    if problems:
        return state.fail(400, "PARAM_ERROR", f"invalid {problems[0]}")
    key = (merchant.mchid, data["out_trade_no"])
    trade = state.trades.get(key)
    if trade is not None:
        if trade.state == "SUCCESS":
            return state.fail(400, "ORDERPAID", "该订单已支付")
        if (trade.total, trade.openid, trade.appid) != (amount["total"], payer["openid"], data["appid"]):
            return state.fail(400, "INVALID_REQUEST", "201 商户订单号重复")
        return state.signed({"prepay_id": trade.prepay_id})
    trade = Trade(mchid=merchant.mchid, appid=data["appid"], out_trade_no=data["out_trade_no"],
                  description=data["description"], notify_url=data["notify_url"], total=amount["total"],
                  currency=amount.get("currency", "CNY"), openid=payer["openid"],
                  prepay_id="wx" + datetime.now(_CN).strftime("%d%H%M%S") + secrets.token_hex(13))
    state.trades[key] = trade
    state.by_prepay[trade.prepay_id] = key
    return state.signed({"prepay_id": trade.prepay_id})


async def query(request: Request) -> Response:
    state = _pay(request)
    merchant, refused = _authorize(request, state, "")
    if refused:
        return refused
    if request.query_params.get("mchid") != merchant.mchid:
        return state.fail(400, "PARAM_ERROR", "mchid does not match the Authorization")
    trade = state.trades.get((merchant.mchid, request.path_params["out_trade_no"]))
    if trade is None:
        return state.fail(404, "ORDER_NOT_EXIST", "订单不存在")
    return state.signed(trade.body())


async def refund(request: Request) -> Response:
    state = _pay(request)
    raw, data = await _body(request)
    merchant, refused = _authorize(request, state, raw)
    if refused:
        return refused
    if data is None:
        return state.fail(400, "PARAM_ERROR", "the body is not a JSON object")
    out_refund_no, amount = data.get("out_refund_no"), data.get("amount") or {}
    if not isinstance(out_refund_no, str) or not _OUT_NO.match(out_refund_no):
        return state.fail(400, "PARAM_ERROR", "invalid out_refund_no")
    state.refund_requests += 1
    done = state.refunds.get((merchant.mchid, out_refund_no))
    if done is not None:
        # The same out_refund_no never refunds twice: WeChat answers with the refund made,
        # and refuses the number asked again for another trade or amount.
        if not _same_refund(done, data):
            return state.fail(400, "INVALID_REQUEST", KEY_REUSED_MESSAGE)
        return state.signed(done)
    trade = state.trades.get((merchant.mchid, str(data.get("out_trade_no") or "")))
    if trade is None:
        trade = next((t for t in state.trades.values()
                      if t.mchid == merchant.mchid and t.transaction_id
                      and t.transaction_id == data.get("transaction_id")), None)
    if trade is None:
        return state.fail(404, "RESOURCE_NOT_EXISTS", "订单不存在")
    if trade.state != "SUCCESS":
        return state.fail(403, "TRADE_NOT_PAID", "订单未支付")
    wanted, total = amount.get("refund"), amount.get("total")
    if not isinstance(wanted, int) or wanted <= 0 or total != trade.total:
        return state.fail(400, "PARAM_ERROR", "invalid amount")
    if sum(r["amount"]["refund"] for r in trade.refunds) + wanted > trade.total:
        return state.fail(403, "NOT_ENOUGH", "申请退款金额超过订单可退金额")
    notify_url = data.get("notify_url")
    if notify_url is not None and not (isinstance(notify_url, str) and notify_url.startswith(("http://", "https://"))):
        return state.fail(400, "PARAM_ERROR", "invalid notify_url")
    # WeChat accepts the refund and answers PROCESSING; SUCCESS (or ABNORMAL, CLOSED)
    # comes later by notification and the refund query.
    made = {"refund_id": "50" + secrets.token_hex(14), "out_refund_no": out_refund_no,
            "transaction_id": trade.transaction_id, "out_trade_no": trade.out_trade_no, "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱", "create_time": _now_text(),
            "status": "PROCESSING", "funds_account": "AVAILABLE",
            "amount": {"total": trade.total, "refund": wanted, "payer_total": trade.total, "payer_refund": wanted,
                       "settlement_refund": wanted, "settlement_total": trade.total, "discount_refund": 0,
                       "currency": trade.currency}}
    trade.refunds.append(made)
    state.refunds[(merchant.mchid, out_refund_no)] = made
    state.refund_extra[(merchant.mchid, out_refund_no)] = {"mchid": merchant.mchid, "notify_url": notify_url or ""}
    return state.signed(made)


# WeChat's answer to a merchant number (out_refund_no, out_order_no, out_return_no) asked
# again with other parameters than its first request.
KEY_REUSED_MESSAGE = "参数与首次请求时不一致"


def _same_refund(done: dict, data: dict) -> bool:
    """A repeated refund request names the same trade and asks the same amount."""
    amount = data.get("amount") or {}
    trade = data.get("out_trade_no") or ""
    txn = data.get("transaction_id") or ""
    same_trade = trade == done["out_trade_no"] if trade else txn == done["transaction_id"]
    return same_trade and amount.get("refund") == done["amount"]["refund"] \
        and amount.get("total") == done["amount"]["total"]


async def query_refund(request: Request) -> Response:
    state = _pay(request)
    merchant, refused = _authorize(request, state, "")
    if refused:
        return refused
    state.refund_queries += 1
    made = state.refunds.get((merchant.mchid, request.path_params["out_refund_no"]))
    if made is None:
        return state.fail(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    return state.signed(made)


# ---- test controls -------------------------------------------------------------------

async def register_merchant(request: Request) -> JSONResponse:
    state = _pay(request)
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict) or not data.get("mchid") or not data.get("appid"):
        return JSONResponse({"code": "PARAM_ERROR", "message": "mchid and appid are required"}, status_code=400)
    api_v3_key = data.get("api_v3_key") or secrets.token_hex(16)
    if len(api_v3_key.encode()) != 32:
        return JSONResponse({"code": "PARAM_ERROR", "message": "api_v3_key must be 32 bytes"}, status_code=400)
    key = _new_key()
    merchant = Merchant(mchid=str(data["mchid"]), appid=str(data["appid"]), serial_no=secrets.token_hex(20).upper(),
                        api_v3_key=api_v3_key, key=key)
    state.merchants[merchant.mchid] = merchant
    return JSONResponse({"mchid": merchant.mchid, "appid": merchant.appid, "serial_no": merchant.serial_no,
                         "api_v3_key": api_v3_key, "private_key_pem": _pem_private(key),
                         "platform_public_key_pem": _pem_public(state.platform_key.public_key()),
                         "platform_public_key_id": state.platform_key_id})


async def platform_key(request: Request) -> JSONResponse:
    state = _pay(request)
    return JSONResponse({"public_key_pem": _pem_public(state.platform_key.public_key()),
                         "public_key_id": state.platform_key_id})


def _trade_of(request: Request) -> Trade | None:
    state = _pay(request)
    key = state.by_prepay.get(request.path_params["prepay_id"])
    return state.trades.get(key) if key else None


async def complete(request: Request) -> JSONResponse:
    state = _pay(request)
    trade = _trade_of(request)
    if trade is None:
        return JSONResponse({"code": "ORDER_NOT_EXIST", "message": "no such prepay_id"}, status_code=404)
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = {}
    if trade.state != "SUCCESS":
        trade.state = "SUCCESS"
        trade.transaction_id = "42" + secrets.token_hex(13)
        trade.success_time = _now_text()
    note = state.notification(trade)
    delivered = None
    if data.get("notify", True):
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.post(note["url"], content=note["body"].encode(), headers=note["headers"])
            delivered = {"status": reply.status_code, "body": reply.text}
    return JSONResponse({"trade": trade.body(), "notification": note, "delivered": delivered})


async def mint_notification(request: Request) -> JSONResponse:
    state = _pay(request)
    trade = _trade_of(request)
    if trade is None:
        return JSONResponse({"code": "ORDER_NOT_EXIST", "message": "no such prepay_id"}, status_code=404)
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = {}
    ts = data.get("timestamp")
    return JSONResponse(state.notification(trade, int(ts) if ts is not None else None,
                                           data.get("trade_state") or "SUCCESS"))


def _refund_of(request: Request) -> dict | None:
    """The refund named in the path (by out_refund_no, of any merchant), with its merchant
    and notify_url."""
    state = _pay(request)
    no = request.path_params["out_refund_no"]
    key = next((k for k in state.refunds if k[1] == no), None)
    return state.refunds[key] | state.refund_extra.get(key, {}) if key else None


async def settle_refund(request: Request) -> JSONResponse:
    state = _pay(request)
    refund = _refund_of(request)
    if refund is None:
        return JSONResponse({"code": "RESOURCE_NOT_EXISTS", "message": "no such out_refund_no"}, status_code=404)
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = {}
    status = data.get("status", "SUCCESS")
    if status not in ("SUCCESS", "ABNORMAL", "CLOSED"):
        return JSONResponse({"code": "PARAM_ERROR", "message": "status: SUCCESS, ABNORMAL or CLOSED"},
                            status_code=400)
    stored = state.refunds[(refund["mchid"], refund["out_refund_no"])]
    stored["status"] = status
    if status == "SUCCESS":
        stored["success_time"] = _now_text()
    note = state.refund_notification(refund | stored)
    delivered = None
    if data.get("notify", True) and note["url"]:
        async with httpx.AsyncClient(timeout=10) as client:
            reply = await client.post(note["url"], content=note["body"].encode(), headers=note["headers"])
            delivered = {"status": reply.status_code, "body": reply.text}
    return JSONResponse({"refund": stored, "notification": note, "delivered": delivered})


async def mint_refund_notification(request: Request) -> JSONResponse:
    state = _pay(request)
    refund = _refund_of(request)
    if refund is None:
        return JSONResponse({"code": "RESOURCE_NOT_EXISTS", "message": "no such out_refund_no"}, status_code=404)
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        data = {}
    ts = data.get("timestamp")
    return JSONResponse(state.refund_notification(refund, data.get("status") or "SUCCESS",
                                                  int(ts) if ts is not None else None))


async def list_refunds(request: Request) -> JSONResponse:
    state = _pay(request)
    trade = state.trades.get((request.query_params.get("mchid", ""), request.query_params.get("out_trade_no", "")))
    return JSONResponse({"refunds": trade.refunds if trade else [], "requests": state.refund_requests,
                         "queries": state.refund_queries})


routes = [
    Route("/v3/pay/transactions/jsapi", jsapi, methods=["POST"]),
    Route("/v3/pay/transactions/out-trade-no/{out_trade_no}", query, methods=["GET"]),
    Route("/v3/refund/domestic/refunds", refund, methods=["POST"]),
    Route("/v3/refund/domestic/refunds/{out_refund_no}", query_refund, methods=["GET"]),
]
control_routes = [
    Route("/pay/merchants", register_merchant, methods=["POST"]),
    Route("/pay/platform-key", platform_key, methods=["GET"]),
    Route("/pay/refunds", list_refunds, methods=["GET"]),
    Route("/pay/refunds/{out_refund_no}/settle", settle_refund, methods=["POST"]),
    Route("/pay/refunds/{out_refund_no}/notification", mint_refund_notification, methods=["POST"]),
    Route("/pay/{prepay_id}/complete", complete, methods=["POST"]),
    Route("/pay/{prepay_id}/notification", mint_notification, methods=["POST"]),
]


def setup(app) -> None:
    """A fresh platform key pair for every start, as the stand-in's WeChat Pay identity."""
    app.state.standin_pay = PayState()
