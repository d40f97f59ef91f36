"""WeChat Pay API v3 over HTTP (the WechatPay port): JSAPI prepay, query by out_trade_no,
domestic refunds, and reading WeChat's notifications. Every request carries the
WECHATPAY2-SHA256-RSA2048 Authorization of the merchant's key; every answer must carry
WeChat's signature, verified with the platform public key. Only the base URL differs
between WeChat (https://api.mch.weixin.qq.com) and the local stand-in."""
from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx

from siyu_kit import logging as slog
from siyu_kit.errors import FailedPrecondition, Unavailable

from services.order.adapters import wechat_pay_crypto as crypto
from services.order.application.ports import WechatCredentialRepository
from services.order.domain.payments import (JsapiParams, Payment, PaymentMethod, RefundReceipt, RefundResult,
                                            TradeResult, WechatCredentials)
from services.order.domain.refunds import WECHAT_REFUND_STATUS, ProviderStatus

log = slog.get("siyu.order.wechat_pay")

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
PREPAY = "/v3/pay/transactions/jsapi"
QUERY = "/v3/pay/transactions/out-trade-no/{out_trade_no}"
REFUNDS = "/v3/refund/domestic/refunds"
REFUND_QUERY = "/v3/refund/domestic/refunds/{out_refund_no}"
UNAVAILABLE = "WECHAT_PAY_UNAVAILABLE"
REFUSED = "WECHAT_PAY_REFUSED"
NOT_CONFIGURED = "WECHAT_PAY_NOT_CONFIGURED"
TIMEOUT_S = 5.0


def key_problems(private_key_pem: str, platform_public_key_pem: str) -> list[tuple[str, str]]:
    """The keys of a credentials request that do not load."""
    problems = []
    try:
        crypto.private_key(private_key_pem)
    except crypto.BadKey:
        problems.append(("private_key_pem", "must be the merchant's RSA private key (PEM)"))
    try:
        crypto.public_key(platform_public_key_pem)
    except crypto.BadKey:
        problems.append(("platform_public_key_pem", "must be WeChat Pay's platform public key (PEM)"))
    return problems


def trade_of(data: dict) -> TradeResult | None:
    amount = data.get("amount") or {}
    try:
        return TradeResult(out_trade_no=str(data.get("out_trade_no") or ""),
                           transaction_id=str(data.get("transaction_id") or ""),
                           trade_state=str(data.get("trade_state") or ""), amount=int(amount.get("total") or 0),
                           currency=str(amount.get("currency") or ""), mch_id=str(data.get("mchid") or ""),
                           app_id=str(data.get("appid") or ""))
    except (TypeError, ValueError, AttributeError):
        return None


def refund_result_of(data: dict) -> RefundResult | None:
    """A refund as WeChat states it (the refund API's answer, its query, or a REFUND.*
    notification's resource, whose status field is refund_status)."""
    status = WECHAT_REFUND_STATUS.get(str(data.get("status") or data.get("refund_status") or ""))
    out_refund_no = str(data.get("out_refund_no") or "")
    if status is None or not out_refund_no:
        return None
    amount = data.get("amount") if isinstance(data.get("amount"), dict) else {}
    refunded = amount.get("refund")
    return RefundResult(out_refund_no=out_refund_no, refund_id=str(data.get("refund_id") or ""), status=status,
                        mch_id=str(data.get("mchid") or ""), amount=refunded if isinstance(refunded, int) else 0)


class WechatPayClient:
    """The WechatPay port. One connection pool for every merchant."""

    def __init__(self, base_url: str, notify_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = TIMEOUT_S):
        self.base_url = base_url.rstrip("/")
        # The gateway's notify route; the merchant id is appended.
        self.notify_url = notify_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s, transport=transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(self, creds: WechatCredentials, method: str, path: str, payload: dict | None = None,
                    allow_404: bool = False, answer_codes: tuple[str, ...] = ()) -> dict | None:
        body = crypto.dumps(payload) if payload is not None else ""
        auth = crypto.authorization(mchid=creds.mch_id, serial_no=creds.serial_no,
                                    private_key_pem=creds.private_key_pem, method=method, url=path, body=body,
                                    timestamp=str(int(time.time())), nonce=crypto.new_nonce())
        headers = {"Authorization": auth, "Accept": "application/json", "User-Agent": "siyu-order"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            reply = await self._http.request(method, path, content=body.encode() if body else None, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("wechat_pay.unreachable", path=path.split("?")[0], error=type(exc).__name__)
            raise Unavailable("WeChat Pay cannot be reached; retry shortly", reason=UNAVAILABLE) from None
        text = reply.text
        if not crypto.verify_platform(creds.platform_public_key_pem, reply.headers.get("wechatpay-timestamp", ""),
                                      reply.headers.get("wechatpay-nonce", ""), text,
                                      reply.headers.get("wechatpay-signature", "")):
            log.warning("wechat_pay.unsigned_answer", path=path.split("?")[0], status=reply.status_code)
            raise Unavailable("WeChat Pay's answer is not signed by its platform key", reason=UNAVAILABLE)
        data = _json(text)
        if reply.status_code == 404 and allow_404:
            return None
        if reply.status_code >= 500 or reply.status_code == 429:
            raise Unavailable(f"WeChat Pay is unavailable ({data.get('code', reply.status_code)}); retry shortly",
                              reason=UNAVAILABLE)
        if reply.status_code >= 400 and data.get("code") in answer_codes:
            # A refusal the caller reads as an answer (e.g. no bill on a day without trades).
            return data
        if reply.status_code >= 400:
            raise FailedPrecondition(f"WeChat Pay refused: {data.get('code', '')} {data.get('message', '')}".strip(),
                                     reason=REFUSED)
        return data

    async def signed(self, creds: WechatCredentials, method: str, path: str, payload: dict | None = None, *,
                     allow_404: bool = False, answer_codes: tuple[str, ...] = ()) -> dict | None:
        """Any other WeChat Pay API v3 call (transfers, profit sharing, bills: wechat_funds):
        the request signed, the answer's signature verified, refusals raised as here."""
        return await self._call(creds, method, path, payload, allow_404=allow_404, answer_codes=answer_codes)

    async def download(self, creds: WechatCredentials, url: str) -> bytes:
        """A file WeChat offers for download (a bill's download_url): the request is signed
        like any other; the file is not, the caller checks the hash WeChat gave with the URL."""
        parsed = httpx.URL(url)
        path = parsed.raw_path.decode()
        auth = crypto.authorization(mchid=creds.mch_id, serial_no=creds.serial_no,
                                    private_key_pem=creds.private_key_pem, method="GET", url=path, body="",
                                    timestamp=str(int(time.time())), nonce=crypto.new_nonce())
        try:
            reply = await self._http.get(path, headers={"Authorization": auth, "User-Agent": "siyu-order"})
        except httpx.HTTPError as exc:
            log.warning("wechat_pay.unreachable", path=parsed.path, error=type(exc).__name__)
            raise Unavailable("WeChat Pay cannot be reached; retry shortly", reason=UNAVAILABLE) from None
        if reply.status_code != 200:
            raise Unavailable(f"WeChat Pay's file could not be downloaded ({reply.status_code}); retry shortly",
                              reason=UNAVAILABLE)
        return reply.content

    async def prepay(self, credentials: WechatCredentials, payment: Payment, payer_openid: str,
                     description: str) -> str:
        data = await self._call(credentials, "POST", PREPAY, {
            "appid": credentials.app_id, "mchid": credentials.mch_id, "description": description[:127],
            "out_trade_no": payment.id, "notify_url": f"{self.notify_url}/{payment.merchant_id}",
            "amount": {"total": payment.amount, "currency": payment.currency},
            "payer": {"openid": payer_openid}})
        prepay_id = str(data.get("prepay_id") or "")
        if not prepay_id:
            raise Unavailable("WeChat Pay answered without a prepay id", reason=UNAVAILABLE)
        return prepay_id

    def jsapi_params(self, credentials: WechatCredentials, prepay_id: str) -> JsapiParams:
        p = crypto.jsapi_params(app_id=credentials.app_id, prepay_id=prepay_id,
                                private_key_pem=credentials.private_key_pem, time_stamp=str(int(time.time())),
                                nonce_str=crypto.new_nonce())
        return JsapiParams(app_id=credentials.app_id, time_stamp=p["timeStamp"], nonce_str=p["nonceStr"],
                           package=p["package"], sign_type=p["signType"], pay_sign=p["paySign"])

    def verify_notification(self, credentials: WechatCredentials, timestamp: str, nonce: str, body: str,
                            signature: str) -> bool:
        return crypto.verify_platform(credentials.platform_public_key_pem, timestamp, nonce, body, signature)

    @staticmethod
    def _resource(credentials: WechatCredentials, body: str) -> dict | None:
        """The notification's resource, decrypted (AEAD_AES_256_GCM with the API v3 key)."""
        resource = _json(body).get("resource")
        if not isinstance(resource, dict) or resource.get("algorithm") != "AEAD_AES_256_GCM":
            return None
        plain = crypto.decrypt(credentials.api_v3_key, str(resource.get("nonce") or ""),
                               str(resource.get("ciphertext") or ""), str(resource.get("associated_data") or ""))
        if plain is None:
            return None
        return _json(plain) or None

    def open_notification(self, credentials: WechatCredentials, body: str) -> TradeResult | None:
        data = self._resource(credentials, body)
        return trade_of(data) if data else None

    @staticmethod
    def event_type(body: str) -> str:
        """The notification's event_type (TRANSACTION.SUCCESS, REFUND.SUCCESS, …), from its
        plain envelope; only trusted once the signature verified."""
        return str(_json(body).get("event_type") or "")

    def open_refund_notification(self, credentials: WechatCredentials, body: str) -> RefundResult | None:
        data = self._resource(credentials, body)
        return refund_result_of(data) if data else None

    async def query_refund(self, credentials: WechatCredentials, out_refund_no: str) -> RefundResult | None:
        """GET /v3/refund/domestic/refunds/{out_refund_no}; None when WeChat has no such refund."""
        path = REFUND_QUERY.format(out_refund_no=quote(out_refund_no, safe=""))
        data = await self._call(credentials, "GET", path, allow_404=True)
        return refund_result_of(data) if data is not None else None

    async def query(self, credentials: WechatCredentials, out_trade_no: str) -> TradeResult | None:
        path = QUERY.format(out_trade_no=quote(out_trade_no, safe="")) + f"?mchid={quote(credentials.mch_id)}"
        data = await self._call(credentials, "GET", path, allow_404=True)
        return trade_of(data) if data is not None else None

    async def refund(self, credentials: WechatCredentials, payment: Payment, out_refund_no: str,
                     amount: int) -> RefundReceipt:
        data = await self._call(credentials, "POST", REFUNDS, {
            "out_trade_no": payment.id, "out_refund_no": out_refund_no,
            # WeChat's REFUND.* notifications come to the same route as the payment's.
            "notify_url": f"{self.notify_url}/{payment.merchant_id}",
            "amount": {"refund": amount, "total": payment.amount, "currency": payment.currency}})
        refund_id = str(data.get("refund_id") or "")
        if not refund_id:
            raise Unavailable("WeChat Pay answered without a refund id", reason=UNAVAILABLE)
        status = WECHAT_REFUND_STATUS.get(str(data.get("status") or ""), ProviderStatus.PROCESSING)
        return RefundReceipt(provider_refund_id=refund_id, amount=int((data.get("amount") or {}).get("refund")
                                                                       or amount), status=status.value)


def _json(text: str) -> dict:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class WechatRefunds:
    """The refund provider of WECHAT payments (next to the sandbox's): WeChat's refund API
    with the credentials of the channel that took the payment, keyed by our refund id
    (out_refund_no), so a retry never refunds twice."""
    method = PaymentMethod.WECHAT

    def __init__(self, credentials: WechatCredentialRepository, client: WechatPayClient):
        self.credentials = credentials
        self.client = client

    async def refund(self, payment: Payment, refund_id: str, amount: int) -> RefundReceipt:
        creds = await self.credentials.get(payment.merchant_id, payment.channel)
        if creds is None:
            raise FailedPrecondition(f"WeChat Pay is not set up for channel {payment.channel}",
                                     reason=NOT_CONFIGURED)
        return await self.client.refund(creds, payment, refund_id, amount)

    async def status(self, payment: Payment, refund_id: str) -> RefundResult | None:
        """What WeChat says of our refund now (its query); None when it has no such refund."""
        creds = await self.credentials.get(payment.merchant_id, payment.channel)
        if creds is None:
            raise FailedPrecondition(f"WeChat Pay is not set up for channel {payment.channel}",
                                     reason=NOT_CONFIGURED)
        return await self.client.query_refund(creds, refund_id)

    async def find(self, payment: Payment, refund_id: str) -> RefundReceipt | None:
        """The refund WeChat made under our refund id (out_refund_no), asked by a second
        caller instead of refunding again; None when WeChat never saw it."""
        found = await self.status(payment, refund_id)
        if found is None or not found.refund_id:
            return None
        return RefundReceipt(provider_refund_id=found.refund_id, amount=found.amount, status=found.status.value)
