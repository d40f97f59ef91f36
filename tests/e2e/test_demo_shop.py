"""What `make run` adds to the demo merchant, tried on a fresh merchant as the mini-program
would use it: the member signed in by the stand-in's login code ships to their default
address, freight is charged by weight, and the order pays through WeChat Pay at the
stand-in. Seeding twice changes nothing. The demo's journey through a live room shows
in the session's funnel, once however often it runs."""
from __future__ import annotations

import uuid

import httpx

from scripts.demo_journey import LIVE_PRICE_PERCENT, run_journey
from scripts.demo_shop import seed_demo_member, seed_freight, seed_wechat_pay
from scripts.seed import Clients
from scripts.wechat import seed_wechat_apps
from tests.support.shop import Shop

CHANNEL = "MINI_PROGRAM"


def weighed_sku(shop: Shop, price: int, weight_g: int) -> str:
    resp = shop.as_staff("POST", "/v1/staff/products", json={
        "code": "demo-" + uuid.uuid4().hex[:10], "title": "称重商品", "status": "PRODUCT_STATUS_ON_SHELF",
        "skus": [{"code": "w-" + uuid.uuid4().hex[:8], "list_price": {"amount": str(price), "currency": "CNY"},
                  "initial_stock": "10", "weight_g": str(weight_g)}]})
    assert resp.status_code == 200, resp.text
    return resp.json()["product"]["skus"][0]["sku_id"]


def test_the_demo_shop_ships_by_weight_to_the_default_address_and_pays_through_wechat(shop, stack):
    clients = Clients.from_env(stack.env())
    merchant_id, staff_id = shop.data["merchant_id"], shop.data["staff_id"]
    apps = seed_wechat_apps(clients, stack.wechat_url, merchant_id, staff_id)
    template = seed_freight(clients, merchant_id, staff_id)
    assert seed_freight(clients, merchant_id, staff_id).version == template.version  # kept, not rewritten
    tag = uuid.uuid4().hex[:8]
    seed_wechat_pay(clients, stack.wechat_url, merchant_id, staff_id, apps[CHANNEL], mchid=f"19{int(tag, 16) % 10**8:08d}")
    member = {"openid": f"o-demo-{tag}", "unionid": f"u-demo-{tag}"}
    home = seed_demo_member(shop.url, stack.wechat_url, apps[CHANNEL], shop.key(CHANNEL), member)
    again = seed_demo_member(shop.url, stack.wechat_url, apps[CHANNEL], shop.key(CHANNEL), member)
    assert again["address_id"] == home["address_id"] and home["is_default"]
    assert home["phone_masked"] == "138****8000"

    code = httpx.post(stack.wechat_url + "/_standin/codes", json={"appid": apps[CHANNEL], **member}).json()["code"]
    token = shop.call("POST", "/v1/auth/login", channel=CHANNEL, json={"code": code}).json()["access_token"]
    heavy = weighed_sku(shop, price=5000, weight_g=1500)  # 2 kg started: ¥8 + ¥2
    quoted = shop.call("POST", "/v1/checkout:quote", channel=CHANNEL, token=token,
                       json={"lines": [{"sku_id": heavy, "quantity": 1}]})
    assert quoted.status_code == 200, quoted.text
    q = quoted.json()["quote"]
    assert (q["shipping_fee"]["amount"], q["shipping_address"]["address_id"]) == ("1000", home["address_id"])
    assert q["shipping_rule"].startswith("全国")
    free = shop.call("POST", "/v1/checkout:quote", channel=CHANNEL, token=token,
                     json={"lines": [{"sku_id": heavy, "quantity": 2}]}).json()["quote"]
    assert free["shipping_fee"]["amount"] == "0"  # ¥100 of goods: free above ¥99

    placed = shop.call("POST", "/v1/orders", channel=CHANNEL, token=token,
                       json={"idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": heavy, "quantity": 1}]})
    assert placed.status_code == 200, placed.text
    order = placed.json()["order"]
    assert order["shipping_address"]["address_id"] == home["address_id"]
    paid = shop.call("POST", f"/v1/orders/{order['order_id']}:pay", channel=CHANNEL, token=token,
                     json={"idempotency_key": uuid.uuid4().hex, "method": "PAYMENT_METHOD_WECHAT"})
    assert paid.status_code == 200, paid.text
    prepay_id = paid.json()["wechat_pay"]["request_payment"]["package"].removeprefix("prepay_id=")
    done = httpx.post(f"{stack.wechat_url}/_standin/pay/{prepay_id}/complete", json={"notify": True}, timeout=20)
    assert done.status_code == 200 and done.json()["delivered"]["status"] == 204, done.text
    state = shop.call("GET", f"/v1/orders/{order['order_id']}", channel=CHANNEL, token=token).json()["order"]["state"]
    assert state == "ORDER_STATE_PAID"


def test_the_demo_journey_shows_in_the_live_sessions_funnel_and_runs_twice_to_the_same_end(shop, stack):
    clients = Clients.from_env(stack.env())
    merchant_id, staff_id = shop.data["merchant_id"], shop.data["staff_id"]
    apps = seed_wechat_apps(clients, stack.wechat_url, merchant_id, staff_id)
    tag = uuid.uuid4().hex[:8]
    seed_wechat_pay(clients, stack.wechat_url, merchant_id, staff_id, apps[CHANNEL], mchid=f"18{int(tag, 16) % 10**8:08d}")
    member = {"openid": f"o-journey-{tag}", "unionid": f"u-journey-{tag}"}
    seed_demo_member(shop.url, stack.wechat_url, apps[CHANNEL], shop.key(CHANNEL), member)
    demo = {**shop.data, "api_keys": {CHANNEL: shop.key(CHANNEL)}}

    first = run_journey(shop.url, stack.wechat_url, apps[CHANNEL], demo, member)
    funnel = first.funnel
    assert (funnel.get("unique_viewers"), funnel.get("product_clicks"), funnel.get("orders"),
            funnel.get("paid_orders")) == ("1", "1", "1", "1"), funnel
    sku = shop.data["products"]["baby-lotion"]["skus"][0]
    list_price = int(clients_price(shop, sku))
    assert first.line_amount == list_price * LIVE_PRICE_PERCENT // 100  # the live price
    assert int(funnel["gmv"]["amount"]) >= first.line_amount  # and the shipping fee
    again = run_journey(shop.url, stack.wechat_url, apps[CHANNEL], demo, member)
    assert (again.live_session_id, again.order_id, again.funnel) == (first.live_session_id, first.order_id, funnel)
    assert any("viewers 1 → clicks 1 → orders 1 → paid 1" in line for line in first.lines())


def clients_price(shop: Shop, sku_id: str) -> str:
    product = shop.call("GET", f"/v1/products/{shop.data['products']['baby-lotion']['product_id']}").json()["product"]
    return next(s["list_price"]["amount"] for s in product["skus"] if s["sku_id"] == sku_id)
