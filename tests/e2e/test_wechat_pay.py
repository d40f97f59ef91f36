"""WeChat Pay through the gateway against the local WeChat stand-in, as the mini-program
pays: prepay → wx.requestPayment parameters → WeChat's notification → PAID; forged,
stale, replayed and tampered notifications refused with nothing changed; a refund
retried three times refunded once at WeChat; a payment confirmed by the query when its
notification never came; credentials no API or log shows; and the measured latency of
prepay and notification handling."""
from __future__ import annotations

import base64
import json
import math
import statistics
import time
import uuid
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from tests.support import wait_until
from tests.support.shop import Shop

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

CREDS = "/v1/staff/wechat-pay/credentials"
CHANNEL = "MINI_PROGRAM"


def new_key() -> str:
    return uuid.uuid4().hex


class WechatPay:
    """The stand-in's WeChat Pay test controls, and the shop's credentials set over HTTP."""

    def __init__(self, url: str, shop: Shop):
        self.client = httpx.Client(base_url=url, timeout=20)
        self.shop = shop
        tag = uuid.uuid4().hex[:10]
        self.appid, self.mchid = f"wxpay{tag}", str(1900000000 + int(tag[:6], 16) % 99999999)
        resp = self.client.post("/_standin/pay/merchants", json={"mchid": self.mchid, "appid": self.appid})
        assert resp.status_code == 200, resp.text
        self.issued = resp.json()
        put = shop.as_staff("PUT", f"{CREDS}/CHANNEL_{CHANNEL}", json={
            "app_id": self.appid, "mch_id": self.mchid, "api_v3_key": self.issued["api_v3_key"],
            "private_key_pem": self.issued["private_key_pem"], "serial_no": self.issued["serial_no"],
            "platform_public_key_pem": self.issued["platform_public_key_pem"],
            "platform_public_key_id": self.issued["platform_public_key_id"]})
        assert put.status_code == 200, put.text
        self.notify_url = f"{shop.url}/v1/payments/wechat/notify/{shop.data['merchant_id']}"

    def complete(self, prepay_id: str, notify: bool = True) -> dict:
        resp = self.client.post(f"/_standin/pay/{prepay_id}/complete", json={"notify": notify})
        assert resp.status_code == 200, resp.text
        return resp.json()

    def notification(self, prepay_id: str, **options) -> dict:
        resp = self.client.post(f"/_standin/pay/{prepay_id}/notification", json=options)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def deliver(self, note: dict, headers: dict | None = None, body: str | None = None) -> httpx.Response:
        return httpx.post(self.notify_url, content=(note["body"] if body is None else body).encode(),
                          headers=headers or note["headers"], timeout=20)

    def refunds(self, out_trade_no: str) -> list[dict]:
        return self.client.get("/_standin/pay/refunds", params={"mchid": self.mchid,
                                                                "out_trade_no": out_trade_no}).json()["refunds"]


@pytest.fixture
def wxpay(shop, stack) -> WechatPay:
    return WechatPay(stack.wechat_url, shop)


def buy(shop: Shop, token: str, sku: str) -> str:
    placed = shop.call("POST", "/v1/orders", channel=CHANNEL, token=token,
                       json={"idempotency_key": new_key(), "lines": [{"sku_id": sku, "quantity": 1}]})
    assert placed.status_code == 200, placed.text
    return placed.json()["order"]["order_id"]


def prepay(shop: Shop, token: str, order_id: str, key: str = "") -> httpx.Response:
    return shop.call("POST", f"/v1/orders/{order_id}:pay", channel=CHANNEL, token=token, json={
        "idempotency_key": key or new_key(), "method": "PAYMENT_METHOD_WECHAT", "payer_openid": "o-" + token[-12:]})


def order_of(shop: Shop, token: str, order_id: str) -> dict:
    resp = shop.call("GET", f"/v1/orders/{order_id}", channel=CHANNEL, token=token)
    assert resp.status_code == 200, resp.text
    return resp.json()["order"]


def staff_order(shop: Shop, order_id: str) -> dict:
    resp = shop.as_staff("GET", f"/v1/staff/orders/{order_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_prepay_notification_paid_and_the_parameters_wx_request_payment_takes(shop, wxpay):
    token = shop.login("union-wxpay-" + new_key()[:8], channel=CHANNEL)["access_token"]
    order_id = buy(shop, token, shop.new_sku(stock=5, price=2590))
    resp = prepay(shop, token, order_id)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    payment, params = body["payment"], body["wechat_pay"]
    assert payment["method"] == "PAYMENT_METHOD_WECHAT" and payment["state"] == "PAYMENT_STATE_PENDING"
    request_payment = params["request_payment"]
    assert set(request_payment) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert request_payment["package"].startswith("prepay_id=wx") and request_payment["signType"] == "RSA"
    assert params["app_id"] == wxpay.appid
    merchant_key = serialization.load_pem_private_key(wxpay.issued["private_key_pem"].encode(), None)
    merchant_key.public_key().verify(
        base64.b64decode(request_payment["paySign"]),
        f"{wxpay.appid}\n{request_payment['timeStamp']}\n{request_payment['nonceStr']}\n"
        f"{request_payment['package']}\n".encode(), padding.PKCS1v15(), SHA256())

    done = wxpay.complete(request_payment["package"].removeprefix("prepay_id="))
    assert done["delivered"]["status"] == 204, done["delivered"]
    assert order_of(shop, token, order_id)["state"] == "ORDER_STATE_PAID"
    paid = staff_order(shop, order_id)["payments"][0]
    assert paid["state"] == "PAYMENT_STATE_SUCCEEDED" and paid["provider_txn_id"] == done["trade"]["transaction_id"]


def test_the_payer_comes_from_the_token_and_a_member_without_wechat_there_is_refused(shop, wxpay):
    # Signed in only on the H5 shop: no openid in the mini-program's app to charge.
    token = shop.login("union-wxnone-" + new_key()[:8], channel="H5")["access_token"]
    order_id = buy(shop, token, shop.new_sku(stock=5, price=1000))
    refused = prepay(shop, token, order_id)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["reason"] == "WECHAT_LOGIN_REQUIRED"
    assert staff_order(shop, order_id)["payments"] == []
    # Once signed in on the mini-program, whatever payer_openid the client sends is ignored.
    mini = shop.login("union-wxnone-other-" + new_key()[:8], channel=CHANNEL)["access_token"]
    paid = prepay(shop, mini, buy(shop, mini, shop.new_sku(stock=5, price=1000)))
    assert paid.status_code == 200, paid.text


def test_forged_stale_replayed_and_tampered_notifications_change_nothing(shop, wxpay):
    token = shop.login("union-wxbad-" + new_key()[:8], channel=CHANNEL)["access_token"]
    order_id = buy(shop, token, shop.new_sku(stock=5, price=1000))
    prepay_id = prepay(shop, token, order_id).json()["wechat_pay"]["package"].removeprefix("prepay_id=")
    before = staff_order(shop, order_id)

    note = wxpay.notification(prepay_id)
    h = note["headers"]
    # Forged: signed with a key that is not WeChat's.
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = base64.b64encode(other.sign(f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n{note['body']}\n"
                                         .encode(), padding.PKCS1v15(), SHA256())).decode()
    refused = wxpay.deliver(note, headers={**h, "Wechatpay-Signature": forged})
    assert refused.status_code == 401 and refused.json() == {"code": "FAIL", "message": "BAD_SIGNATURE"}
    # Tampered: the body changed after WeChat signed it.
    data = json.loads(note["body"])
    data["resource"]["ciphertext"] = data["resource"]["ciphertext"][:-4] + "AAA="
    refused = wxpay.deliver(note, body=json.dumps(data, separators=(",", ":")))
    assert refused.status_code == 401 and refused.json()["code"] == "FAIL"
    # Stale: correctly signed thirty days ago.
    stale = wxpay.notification(prepay_id, timestamp=int(time.time()) - 30 * 86400)
    refused = wxpay.deliver(stale)
    assert refused.status_code == 401 and refused.json()["message"] == "NOTIFICATION_STALE"
    # No signature at all, and an unknown merchant in the path.
    assert wxpay.deliver(note, headers={"Content-Type": "application/json"}).status_code == 401
    assert httpx.post(f"{shop.url}/v1/payments/wechat/notify/mch_01JAAAAAAAAAAAAAAAAAAAAAAA",
                      content=note["body"].encode(), headers=h).status_code == 401
    assert staff_order(shop, order_id) == before
    # Replayed: a genuine notification (WeChat says the trade is not paid yet) is taken
    # once; the same delivery again is refused.
    genuine = wxpay.notification(prepay_id, trade_state="NOTPAY")
    assert wxpay.deliver(genuine).status_code == 204
    again = wxpay.deliver(genuine)
    assert again.status_code == 401 and again.json()["message"] == "NOTIFICATION_REPLAYED"
    after = staff_order(shop, order_id)
    assert after["order"]["state"] == "ORDER_STATE_PENDING_PAYMENT"
    assert after["payments"][0]["state"] == "PAYMENT_STATE_PENDING"


def test_a_refund_retried_three_times_is_refunded_once_at_wechat(shop, wxpay):
    token = shop.login("union-wxrefund-" + new_key()[:8], channel=CHANNEL)["access_token"]
    order_id = buy(shop, token, shop.new_sku(stock=5, price=3000))
    prepay_id = prepay(shop, token, order_id).json()["wechat_pay"]["package"].removeprefix("prepay_id=")
    wxpay.complete(prepay_id)
    order = order_of(shop, token, order_id)
    assert order["state"] == "ORDER_STATE_PAID"
    line = order["lines"][0]["line_id"]
    key = new_key()
    results = [shop.as_staff("POST", f"/v1/staff/orders/{order_id}/refunds", json={
        "idempotency_key": key, "reason": "damaged", "lines": [{"line_id": line, "quantity": "1"}]})
        for _ in range(3)]
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    refund_ids = {r.json()["refund"]["refund_id"] for r in results}
    assert len(refund_ids) == 1 and results[0].json()["refund"]["state"] == "REFUND_STATE_REFUNDED"
    payment_id = staff_order(shop, order_id)["payments"][0]["payment_id"]
    made = wxpay.refunds(payment_id)
    assert [r["out_refund_no"] for r in made] == list(refund_ids)
    assert made[0]["amount"]["refund"] == 3000


def refunded_order(shop: Shop, wxpay: WechatPay, price: int = 3000) -> tuple[str, dict]:
    """A paid WeChat order refunded whole by staff: our refund is REFUNDED at once and
    WeChat answered PROCESSING."""
    token = shop.login("union-wxrs-" + new_key()[:8], channel=CHANNEL)["access_token"]
    order_id = buy(shop, token, shop.new_sku(stock=5, price=price))
    wxpay.complete(prepay(shop, token, order_id).json()["wechat_pay"]["package"].removeprefix("prepay_id="))
    line = order_of(shop, token, order_id)["lines"][0]["line_id"]
    made = shop.as_staff("POST", f"/v1/staff/orders/{order_id}/refunds", json={
        "idempotency_key": new_key(), "reason": "damaged", "lines": [{"line_id": line, "quantity": "1"}]})
    assert made.status_code == 200, made.text
    refund = made.json()["refund"]
    assert refund["state"] == "REFUND_STATE_REFUNDED"
    assert refund["provider_status"] == "REFUND_PROVIDER_STATUS_PROCESSING"
    return order_id, refund


def staff_refund(shop: Shop, order_id: str, refund_id: str) -> dict:
    resp = shop.as_staff("GET", "/v1/staff/refunds", params={"order_id": order_id})
    assert resp.status_code == 200, resp.text
    return next(r for r in resp.json()["refunds"] if r["refund_id"] == refund_id)


def test_a_processing_refund_succeeds_by_wechats_notification(shop, wxpay):
    order_id, refund = refunded_order(shop, wxpay)
    settled = wxpay.client.post(f"/_standin/pay/refunds/{refund['refund_id']}/settle", json={"status": "SUCCESS"})
    assert settled.status_code == 200, settled.text
    assert settled.json()["delivered"]["status"] == 204, settled.json()["delivered"]
    shown = staff_refund(shop, order_id, refund["refund_id"])
    assert shown["provider_status"] == "REFUND_PROVIDER_STATUS_SUCCEEDED" and shown["state"] == "REFUND_STATE_REFUNDED"
    listed = shop.as_staff("GET", "/v1/staff/refunds", params={"provider_status": "REFUND_PROVIDER_STATUS_SUCCEEDED"})
    assert refund["refund_id"] in {r["refund_id"] for r in listed.json()["refunds"]}
    # The same delivery again is a replay.
    note = settled.json()["notification"]
    again = wxpay.deliver(note)
    assert again.status_code == 401 and again.json()["message"] == "NOTIFICATION_REPLAYED"


def test_a_processing_refund_succeeds_by_the_query_when_the_notification_never_came(shop, wxpay):
    order_id, refund = refunded_order(shop, wxpay)
    wxpay.client.post(f"/_standin/pay/refunds/{refund['refund_id']}/settle",
                      json={"status": "SUCCESS", "notify": False})
    wait_until(lambda: staff_refund(shop, order_id, refund["refund_id"])["provider_status"]
               == "REFUND_PROVIDER_STATUS_SUCCEEDED", timeout=30, message="the refund query job confirms it")


def test_a_forged_refund_notification_is_refused_with_nothing_changed(shop, wxpay):
    order_id, refund = refunded_order(shop, wxpay)
    before = staff_order(shop, order_id)
    note = wxpay.client.post(f"/_standin/pay/refunds/{refund['refund_id']}/notification",
                             json={"status": "CLOSED"}).json()
    h = note["headers"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = base64.b64encode(other.sign(f"{h['Wechatpay-Timestamp']}\n{h['Wechatpay-Nonce']}\n{note['body']}\n"
                                         .encode(), padding.PKCS1v15(), SHA256())).decode()
    refused = wxpay.deliver(note, headers={**h, "Wechatpay-Signature": forged})
    assert refused.status_code == 401 and refused.json() == {"code": "FAIL", "message": "BAD_SIGNATURE"}
    stale = wxpay.client.post(f"/_standin/pay/refunds/{refund['refund_id']}/notification",
                              json={"status": "CLOSED", "timestamp": int(time.time()) - 30 * 86400}).json()
    refused = wxpay.deliver(stale)
    assert refused.status_code == 401 and refused.json()["message"] == "NOTIFICATION_STALE"
    assert staff_order(shop, order_id) == before
    assert staff_refund(shop, order_id, refund["refund_id"])["provider_status"] == "REFUND_PROVIDER_STATUS_PROCESSING"


def test_a_payment_whose_notification_never_came_is_confirmed_by_the_query(shop, wxpay):
    token = shop.login("union-wxquery-" + new_key()[:8], channel=CHANNEL)["access_token"]
    order_id = buy(shop, token, shop.new_sku(stock=5, price=1200))
    prepay_id = prepay(shop, token, order_id).json()["wechat_pay"]["package"].removeprefix("prepay_id=")
    wxpay.complete(prepay_id, notify=False)  # paid at WeChat; the notification is lost
    wait_until(lambda: order_of(shop, token, order_id)["state"] == "ORDER_STATE_PAID", timeout=30,
               message="the reconcile job's query pays the order")


def test_credentials_are_never_readable_through_the_api_or_the_logs(shop, wxpay, other_shop, stack):
    listed = shop.as_staff("GET", CREDS)
    assert listed.status_code == 200, listed.text
    [shown] = listed.json()["credentials"]
    assert shown["app_id"] == wxpay.appid and shown["mch_id"] == wxpay.mchid
    assert shown["serial_no"] == wxpay.issued["serial_no"]
    assert shown["api_v3_key_set"] and shown["private_key_set"] and shown["platform_public_key_set"]
    secrets = [wxpay.issued["api_v3_key"], wxpay.issued["private_key_pem"].splitlines()[1]]
    assert not any(s in listed.text for s in secrets)
    # Another merchant sees none of them; a member or a channel key cannot call it.
    assert other_shop.as_staff("GET", CREDS).json().get("credentials", []) == []
    token = shop.login("union-wxcreds-" + new_key()[:8], channel=CHANNEL)["access_token"]
    assert shop.call("GET", CREDS, channel=CHANNEL, token=token).status_code in (401, 403)
    assert shop.call("PUT", f"{CREDS}/CHANNEL_H5", channel=CHANNEL, token=token, json={}).status_code in (400, 401,
                                                                                                        403)
    # Bad input: field violations, nothing written.
    bad = shop.as_staff("PUT", f"{CREDS}/CHANNEL_H5", json={"app_id": "x y", "mch_id": "", "api_v3_key": "short",
                                                             "private_key_pem": "", "serial_no": "",
                                                             "platform_public_key_pem": "",
                                                             "platform_public_key_id": ""})
    assert bad.status_code == 400
    fields = {v["field"] for v in bad.json()["error"]["field_violations"]}
    assert {"app_id", "mch_id", "api_v3_key", "private_key_pem"} <= fields
    assert len(shop.as_staff("GET", CREDS).json()["credentials"]) == 1
    # The secrets are in no log line of any process.
    for log in Path(stack.data_dir, "log").glob("*.log"):
        text = log.read_text(errors="replace")
        assert not any(s in text for s in secrets), log.name


# Enough rounds for a median the suite can print; make bench measures load.
ROUNDS = 8


def test_latency_of_prepay_and_notification_through_the_gateway(shop, wxpay, capsys):
    token = shop.login("union-wxbench-" + new_key()[:8], channel=CHANNEL)["access_token"]
    sku = shop.new_sku(stock=200, price=100)
    prepays, notifies = [], []
    for _ in range(ROUNDS):
        order_id = buy(shop, token, sku)
        started = time.perf_counter()
        resp = prepay(shop, token, order_id)
        prepays.append(time.perf_counter() - started)
        assert resp.status_code == 200, resp.text
        done = wxpay.complete(resp.json()["wechat_pay"]["package"].removeprefix("prepay_id="), notify=False)
        started = time.perf_counter()
        delivered = wxpay.deliver(done["notification"])
        notifies.append(time.perf_counter() - started)
        assert delivered.status_code == 204, delivered.text
    with capsys.disabled():
        p95 = math.ceil(0.95 * ROUNDS) - 1
        print(f"\nWeChat Pay through the gateway, p50 over {ROUNDS}: prepay {statistics.median(prepays) * 1000:.1f} ms, "
              f"notification {statistics.median(notifies) * 1000:.1f} ms "
              f"(p95 {sorted(prepays)[p95] * 1000:.1f} / {sorted(notifies)[p95] * 1000:.1f} ms)")
