"""The demo's private-domain journey, as the front ends would drive it through the gateway:
小美 (the demo persona) goes live with the lotion at a live-only price; the demo member
reads her article, opens a share code of the live room and the room, taps the lotion, buys it in the
room and pays through WeChat Pay at the stand-in. The session's funnel then shows each
step. Run by `make run` after the demo member is signed in; running it again changes
nothing (one session, one order: both by idempotency key; a view and a click count once)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import httpx

CHANNEL = "MINI_PROGRAM"
LIVE_PRICE_PERCENT = 80  # of the SKU's list price
FUNNEL_WAIT_S = 15.0


@dataclass(frozen=True)
class Journey:
    live_session_id: str
    order_id: str
    line_amount: int  # what the lotion cost in the order: the live price
    funnel: dict  # the session's funnel today, as GetFunnelReport totals it

    def lines(self) -> list[str]:
        f = self.funnel
        gmv = int(f.get("gmv", {}).get("amount", "0"))
        return [f"Demo journey: live session {self.live_session_id}, order {self.order_id} (paid at the live price)",
                f"  the session's funnel today: viewers {f.get('unique_viewers', '0')} → clicks "
                f"{f.get('product_clicks', '0')} → orders {f.get('orders', '0')} → paid {f.get('paid_orders', '0')} "
                f"→ GMV ¥{gmv / 100:.2f}, conversion {int(f.get('conversion_rate_bp', '0')) / 100:.2f} %"]


def _ok(resp: httpx.Response) -> dict:
    if resp.status_code != 200:
        raise RuntimeError(f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text}")
    return resp.json()


def run_journey(gateway_url: str, wechat_url: str, appid: str, demo: dict, member: dict[str, str]) -> Journey:
    key = demo["api_keys"][CHANNEL]
    lotion = demo["products"]["baby-lotion"]
    with httpx.Client(base_url=gateway_url, timeout=15) as http:
        staff = {"Authorization": "Bearer " + _ok(http.post("/v1/staff/login", json={
            "merchant_code": demo["merchant_code"], "username": demo["staff_username"],
            "password": demo["staff_password"]}))["access_token"]}
        channel = {"X-Api-Key": key}
        product = _ok(http.get(f"/v1/products/{lotion['product_id']}", headers=channel))["product"]
        sku = product["skus"][0]
        live_price = int(sku["list_price"]["amount"]) * LIVE_PRICE_PERCENT // 100

        # 小美 schedules the session once (its idempotency key) and goes live.
        session = _ok(http.post("/v1/staff/live-sessions", headers=staff, json={
            "persona_id": demo["persona_id"], "title": "小美的秋冬润肤直播", "idempotency_key": "demo-live-session",
            "scheduled_at": (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat(),
            "line_up": [{"sku_id": sku["sku_id"], "live_price": {"amount": str(live_price), "currency": "CNY"}}]}
        ))["live_session"]
        session_id = session["live_session_id"]
        if session["state"] == "LIVE_SESSION_STATE_SCHEDULED":
            _ok(http.post(f"/v1/staff/live-sessions/{session_id}:change-state", headers=staff,
                          json={"state": "LIVE_SESSION_STATE_LIVE"}))
        _ok(http.post(f"/v1/staff/live-sessions/{session_id}:pin", headers=staff, json={"sku_id": sku["sku_id"]}))

        # The member signs in in the mini-program, reads the article, opens the room's share
        # code, taps the lotion and buys it in the room.
        code = _ok(http.post(f"{wechat_url}/_standin/codes", json={"appid": appid, **member}))["code"]
        token = _ok(http.post("/v1/auth/login", headers=channel, json={"code": code}))["access_token"]
        me = {**channel, "Authorization": f"Bearer {token}"}
        _ok(http.post(f"/v1/contents/{demo['content_id']}:view", headers=me, json={}))
        share = _ok(http.post("/v1/share-codes", headers=me, json={
            "target_kind": "SHARE_TARGET_KIND_LIVE_SESSION", "target_id": session_id,
            "persona_id": demo["persona_id"]}))["share_code"]
        _ok(http.post(f"/v1/share-codes/{share['code']}:open", headers=me, json={}))
        _ok(http.get(f"/v1/live-sessions/{session_id}", headers=me))  # the room opens: a viewer
        _ok(http.post("/v1/product-events:batch", headers=me, json={"events": [{
            "client_event_id": "demo-journey-click", "kind": "PRODUCT_EVENT_KIND_CLICK",
            "product_id": lotion["product_id"], "persona_id": demo["persona_id"], "live_session_id": session_id}]}))
        order = _ok(http.post("/v1/orders", headers=me, json={
            "idempotency_key": "demo-journey-order", "lines": [{"sku_id": sku["sku_id"], "quantity": "1"}],
            "attribution": {"persona_id": demo["persona_id"],
                            "live_session_id": session_id, "share_code": share["code"]}}))["order"]
        if order["state"] == "ORDER_STATE_PENDING_PAYMENT":
            paid = _ok(http.post(f"/v1/orders/{order['order_id']}:pay", headers=me, json={
                "idempotency_key": "demo-journey-pay", "method": "PAYMENT_METHOD_WECHAT"}))
            prepay_id = paid["wechat_pay"]["request_payment"]["package"].removeprefix("prepay_id=")
            _ok(http.post(f"{wechat_url}/_standin/pay/{prepay_id}/complete", json={"notify": True}))

        # The funnel counts from events: wait (bounded) until the payment is in it.
        today = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d")
        deadline, funnel = time.monotonic() + FUNNEL_WAIT_S, {}
        while time.monotonic() < deadline:
            resp = http.get("/v1/staff/funnel-report", headers=staff, params={
                "dimension": "FUNNEL_DIMENSION_LIVE_SESSION", "ref_id": session_id, "from_day": today,
                "to_day": today})
            funnel = resp.json().get("total", {}) if resp.status_code == 200 else {}
            if int(funnel.get("paid_orders", "0")) >= 1:
                break
            time.sleep(0.3)
    return Journey(session_id, order["order_id"], int(order["lines"][0]["line_amount"]["amount"]), funnel)
