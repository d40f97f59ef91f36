"""The screens' everyday reads through the gateway, as a mini-program would make them:
the order list by tab and the counts of every tab, who cancelled an order, an
idempotency key reused for another request, and HTTP statuses that follow
google.rpc.Code's mapping with the reason to branch on."""
from __future__ import annotations

import uuid

import httpx

from tests.support import wait_until
from tests.support.shop import ok


def new_key() -> str:
    return uuid.uuid4().hex



def place(shop, token, sku, quantity=1, key=None, **more) -> httpx.Response:
    return shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": key or new_key(), "lines": [{"sku_id": sku, "quantity": str(quantity)}], **more})


def tab(shop, token, name, **params) -> list[str]:
    body = ok(shop.call("GET", "/v1/orders", token=token, params={**({"tab": name} if name else {}), **params}))
    return [o["order_id"] for o in body.get("orders", [])]


def counts(shop, token) -> dict[str, int]:
    return {c["tab"]: int(c.get("count", "0")) for c in ok(shop.call("GET", "/v1/orders:counts", token=token))["counts"]}


def test_the_order_tabs_and_their_counts(shop):
    token = shop.login("union-tabs")["access_token"]
    sku = shop.new_sku(50, price=1000)
    assert counts(shop, token) == {"ORDER_TAB_UNPAID": 0, "ORDER_TAB_TO_SHIP": 0, "ORDER_TAB_SHIPPED": 0,
                                   "ORDER_TAB_COMPLETED": 0, "ORDER_TAB_REFUNDS": 0}
    unpaid = ok(place(shop, token, sku))["order"]["order_id"]
    to_ship = ok(place(shop, token, sku))["order"]["order_id"]
    shop.pay(token, to_ship)
    shipped = ok(place(shop, token, sku))["order"]["order_id"]
    shop.pay(token, shipped)
    ok(shop.as_staff("POST", f"/v1/staff/orders/{shipped}:ship", json={"carrier": "SF", "tracking_number": "SF1"}))
    done = ok(place(shop, token, sku, 2))["order"]
    shop.pay(token, done["order_id"])
    ok(shop.as_staff("POST", f"/v1/staff/orders/{done['order_id']}:ship", json={"carrier": "SF",
                                                                                  "tracking_number": "SF2"}))
    ok(shop.call("POST", f"/v1/orders/{done['order_id']}:confirmReceipt", token=token, json={}))
    ok(shop.call("POST", f"/v1/orders/{done['order_id']}/refunds", token=token, json={
        "idempotency_key": new_key(), "lines": [{"line_id": done["lines"][0]["line_id"], "quantity": "1"}]}))

    assert tab(shop, token, "ORDER_TAB_UNPAID") == [unpaid]
    assert tab(shop, token, "ORDER_TAB_TO_SHIP") == [to_ship]
    assert tab(shop, token, "ORDER_TAB_SHIPPED") == [shipped]
    assert tab(shop, token, "ORDER_TAB_COMPLETED") == [done["order_id"]]
    assert tab(shop, token, "ORDER_TAB_REFUNDS") == [done["order_id"]]
    assert counts(shop, token) == {"ORDER_TAB_UNPAID": 1, "ORDER_TAB_TO_SHIP": 1, "ORDER_TAB_SHIPPED": 1,
                                   "ORDER_TAB_COMPLETED": 1, "ORDER_TAB_REFUNDS": 1}
    # Another member of the shop sees none of them.
    other = shop.login("union-tabs-other")["access_token"]
    assert set(counts(shop, other).values()) == {0} and tab(shop, other, "ORDER_TAB_UNPAID") == []

    # Bad input: 400 with the field named.
    for params, field in (({"tab": "ORDER_TAB_LOST"}, "tab"), ({"tab": "ORDER_TAB_UNPAID", "page_size": "500"},
                                                               "page_size")):
        resp = shop.call("GET", "/v1/orders", token=token, params=params)
        assert resp.status_code == 400, resp.text
        assert field in {v["field"] for v in resp.json()["error"]["field_violations"]}
    assert shop.call("GET", "/v1/orders:counts", token=None).status_code == 401


def test_every_cancelled_order_says_who_cancelled_it(shop):
    token = shop.login("union-cancel")["access_token"]
    sku = shop.new_sku(10, price=1000)
    by_member = ok(place(shop, token, sku))["order"]["order_id"]
    cancelled = ok(shop.call("POST", f"/v1/orders/{by_member}:cancel", token=token, json={}))["order"]
    assert (cancelled["state"], cancelled["cancel_reason"]) == ("ORDER_STATE_CANCELLED", "MEMBER")

    by_staff = ok(place(shop, token, sku, 3))["order"]["order_id"]
    wait_until(lambda: shop.stock(sku)["reserved"] == 3, message="held")
    bad = shop.as_staff("POST", "/v1/staff/orders/ord_bad:cancel", json={})
    assert bad.status_code == 400 and bad.json()["error"]["field_violations"][0]["field"] == "order_id"
    staff_cancelled = ok(shop.as_staff("POST", f"/v1/staff/orders/{by_staff}:cancel", json={}))["order"]
    assert (staff_cancelled["state"], staff_cancelled["cancel_reason"]) == ("ORDER_STATE_CANCELLED", "STAFF")
    mine = ok(shop.call("GET", f"/v1/orders/{by_staff}", token=token))["order"]
    assert mine["cancel_reason"] == "STAFF"
    wait_until(lambda: shop.stock(sku)["reserved"] == 0, message="stock released")

    # A paid order is refunded, never cancelled: 400 with the reason to branch on.
    paid = ok(place(shop, token, sku))["order"]["order_id"]
    shop.pay(token, paid)
    late = shop.as_staff("POST", f"/v1/staff/orders/{paid}:cancel", json={})
    assert late.status_code == 400 and late.json()["error"]["reason"] == "ORDER_NOT_CANCELLABLE", late.text
    assert late.json()["error"]["code"] == "FAILED_PRECONDITION"


def test_an_idempotency_key_reused_for_another_order_is_refused(shop):
    token = shop.login("union-keys")["access_token"]
    sku = shop.new_sku(10, price=1000)
    first = ok(place(shop, token, sku, 2, key="checkout-1"))["order"]
    assert ok(place(shop, token, sku, 2, key="checkout-1"))["order"] == first
    for quantity, more in ((3, {}), (2, {"remark": "gift wrap"})):
        resp = place(shop, token, sku, quantity, key="checkout-1", **more)
        assert resp.status_code == 409, resp.text
        error = resp.json()["error"]
        assert (error["code"], error["reason"]) == ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED")
    assert shop.stock(sku)["reserved"] == 2
    assert tab(shop, token, "") == [first["order_id"]]


def test_statuses_follow_the_google_rpc_mapping_and_the_document_says_so(shop):
    token = shop.login("union-status")["access_token"]
    sku = shop.new_sku(10, price=1000)
    order_id = ok(place(shop, token, sku))["order"]["order_id"]
    ok(shop.call("POST", f"/v1/orders/{order_id}:cancel", token=token, json={}))
    resp = shop.call("POST", f"/v1/orders/{order_id}:pay", token=token, json={"idempotency_key": new_key()})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["status"], error["reason"]) == ("FAILED_PRECONDITION", 400, "ORDER_NOT_PAYABLE")
    assert shop.call("GET", f"/v1/orders/{order_id}", token=None).status_code == 401
    missing = shop.call("GET", "/v1/orders/ord_01J00000000000000000000000", token=token)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"

    document = ok(shop.call("GET", "/openapi.json", channel=None))
    operation = document["paths"]["/v1/orders/{order_id}:pay"]["post"]
    assert "412" not in operation["responses"] and "400" in operation["responses"]
    assert {"ORDER_NOT_PAYABLE", "IDEMPOTENCY_KEY_REUSED"} <= set(operation["x-siyu-reasons"])
    assert "412" not in document["components"]["responses"]
    assert "/v1/orders:counts" in document["paths"] and "/v1/staff/orders/{order_id}:cancel" in document["paths"]


def test_a_member_sees_their_price_next_to_the_list_price(shop):
    from datetime import datetime, timedelta, timezone

    def rfc3339(moment):
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    now = datetime.now(timezone.utc)
    code = "p-" + new_key()[:12]
    product = ok(shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": f"Member price {code}", "status": "PRODUCT_STATUS_ON_SHELF", "skus": [
            {"code": "tier", "list_price": {"amount": "1000", "currency": "CNY"}, "initial_stock": "5",
             "tier_prices": [{"tier": "REGULAR", "price": {"amount": "850", "currency": "CNY"}}]},
            {"code": "limited", "list_price": {"amount": "1000", "currency": "CNY"}, "initial_stock": "5",
             "tier_prices": [{"tier": "REGULAR", "price": {"amount": "900", "currency": "CNY"}}],
             "limited_time_price": {"price": {"amount": "700", "currency": "CNY"},
                                    "starts_at": rfc3339(now - timedelta(hours=1)),
                                    "ends_at": rfc3339(now + timedelta(hours=1))}},
            {"code": "plain", "list_price": {"amount": "1000", "currency": "CNY"}, "initial_stock": "5"}]}))["product"]
    token = shop.login("union-my-price")["access_token"]

    def mine(skus) -> dict:
        return {s["code"]: (s.get("member_price", {}).get("amount"), s.get("member_price_kind", "")) for s in skus}

    detail = ok(shop.call("GET", f"/v1/products/{product['product_id']}", token=token))["product"]
    assert mine(detail["skus"]) == {"tier": ("850", "TIER_DISCOUNT"), "limited": ("700", "LIMITED_TIME_PRICE"),
                                    "plain": (None, "")}
    assert all(s["list_price"]["amount"] == "1000" for s in detail["skus"])
    listed = ok(shop.call("GET", "/v1/products", token=token, params={"keyword": code, "page_size": "50"}))
    (found,) = [p for p in listed["products"] if p["product_id"] == product["product_id"]]
    assert mine(found["skus"]) == mine(detail["skus"])

    # Checkout charges what the page showed.
    sku = {s["code"]: s["sku_id"] for s in detail["skus"]}
    quote = ok(shop.call("POST", "/v1/checkout:quote", token=token, json={
        "lines": [{"sku_id": sku["tier"], "quantity": "1"}, {"sku_id": sku["limited"], "quantity": "1"}]}))
    charged = {line["sku_id"]: (line["line_amount"]["amount"], [st["step"] for st in line.get("steps", [])])
               for line in quote["quote"]["lines"]}
    assert charged == {sku["tier"]: ("850", ["TIER_DISCOUNT"]), sku["limited"]: ("700", ["LIMITED_TIME_PRICE"])}

    # Without a token, or with one that does not hold: list prices only, never a refusal.
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        anonymous = ok(shop.call("GET", f"/v1/products/{product['product_id']}", headers=headers))["product"]
        assert {s.get("member_price_kind", "") for s in anonymous["skus"]} == {""}
    bad = shop.call("GET", "/v1/products", token=token, params={"page_size": "500"})
    assert bad.status_code == 400 and "page_size" in {v["field"] for v in bad.json()["error"]["field_violations"]}
