"""The points mall end to end, through the gateway and the real services: a product item
for points plus cash is ordered with its points held, paid with them spent, cancelled with
them back and refunded with them back; a points-only item is paid at once; a coupon item
is redeemed into the member's coupons with its points spent; concurrent redemptions never
spend more points or units than there are; every route of both "Points mall" blocks
refuses bad input (400), other merchants (404) and the wrong role (403)."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from siyu_kit.ids import new_id
from tests.support import assert_routes_named, block_routes, wait_until
from tests.support.shop import Shop, ok, refused, staff_with

ROUTES = {**block_routes("siyu/order/v1/order.proto", "Points mall"),
          **block_routes("siyu/member/v1/member.proto", "Points mall")}


def window(hours: int = 2) -> dict:
    now = datetime.now(timezone.utc)
    return {"starts_at": (now - timedelta(minutes=1)).isoformat(), "ends_at": (now + timedelta(hours=hours)).isoformat()}


def product_item(shop: Shop, sku: str, points: int, cash: int, units: int = 5, limit: int = 5) -> dict:
    return ok(shop.as_staff("POST", "/v1/staff/points-mall/items", json={
        "sku_id": sku, "title": "积分兑换", "points_price": str(points), "cash_price": str(cash), "units": str(units),
        "per_member_limit": limit, "idempotency_key": uuid.uuid4().hex, **window()}))["item"]


def coupon_template(shop: Shop, total: int = 0) -> str:
    made = ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json={
        "name": "积分换券", "rule": {"kind": "COUPON_KIND_AMOUNT_OFF", "threshold": "1000", "amount_off": "500",
                                   "scope": "COUPON_SCOPE_ALL"},
        "validity": {"days": 7}, "total": str(total), "per_member_limit": 100,
        "idempotency_key": uuid.uuid4().hex}))["template"]
    ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{made['template_id']}:setState",
                     json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}))
    return made["template_id"]


def coupon_item(shop: Shop, template_id: str, points: int, units: int, limit: int) -> dict:
    return ok(shop.as_staff("POST", "/v1/staff/points-mall/coupons", json={
        "template_id": template_id, "points_price": str(points), "units": str(units), "per_member_limit": limit,
        "idempotency_key": uuid.uuid4().hex, **window()}))["item"]


def member(shop: Shop, points: int) -> tuple[str, str]:
    done = shop.login("pm-" + uuid.uuid4().hex[:10])
    token, member_id = done["access_token"], done["member"]["member_id"]
    if points:
        ok(shop.as_staff("POST", f"/v1/staff/members/{member_id}/points:adjust",
                         json={"points": str(points), "reason": "test", "idempotency_key": uuid.uuid4().hex}))
    return token, member_id


def points_of(shop: Shop, token: str) -> dict:
    p = ok(shop.call("GET", "/v1/me/points", token=token))
    return {k: int(p.get(k, 0)) for k in ("available", "held")}


def order_item(shop: Shop, token: str, item_id: str, quantity: int = 1):
    return shop.call("POST", f"/v1/points-mall/items/{item_id}:order", token=token,
                     json={"idempotency_key": uuid.uuid4().hex, "quantity": str(quantity)})


def redeem(shop: Shop, token: str, item_id: str):
    return shop.call("POST", f"/v1/points-mall/coupons/{item_id}:redeem", token=token,
                     json={"idempotency_key": uuid.uuid4().hex})


def test_a_product_item_holds_its_points_spends_them_when_paid_and_a_refund_returns_them(shop: Shop):
    sku = shop.new_sku(stock=10, price=5000)
    item = product_item(shop, sku, points=300, cash=1000)
    assert item["units_left"] == "5" and item["state"] == "POINTS_MALL_ITEM_STATE_ACTIVE"
    listed = ok(shop.call("GET", "/v1/points-mall/items", token=member(shop, 0)[0]))["items"]
    assert item["item_id"] in [i["item_id"] for i in listed]
    token, _ = member(shop, 1000)

    order = ok(order_item(shop, token, item["item_id"], 2))["order"]
    assert order["payable"]["amount"] == "2000", "the cash price, no points discount"
    assert (order["activity"]["activity_id"], order["activity"]["points_price"]) == (item["item_id"], "600")
    assert order["points_used"] == "600" and not order.get("coupon"), "the points are its price; no coupon"
    assert int((order.get("points_discount") or {}).get("amount", 0)) == 0, "and no discount"
    assert points_of(shop, token) == {"available": 400, "held": 600}
    got = ok(shop.call("GET", f"/v1/points-mall/items/{item['item_id']}", token=token))["item"]
    assert got["units_left"] == "3"

    shop.pay(token, order["order_id"])
    wait_until(lambda: points_of(shop, token) == {"available": 400, "held": 0}, message="the held points are spent")

    # One of the two units back: its 300 points come back; then the other: all 600.
    line = order["lines"][0]["line_id"]
    for expected in (700, 1000):
        refund = ok(shop.as_staff("POST", f"/v1/staff/orders/{order['order_id']}/refunds", json={
            "idempotency_key": uuid.uuid4().hex, "lines": [{"line_id": line, "quantity": "1"}], "reason": "r"}))
        assert refund["refund"]["state"] == "REFUND_STATE_REFUNDED", refund
        wait_until(lambda e=expected: points_of(shop, token)["available"] == e,
                   message=f"the refunded unit's points return ({expected})")


def test_cancelling_returns_the_points_and_too_few_points_hold_nothing_and_take_no_units(shop: Shop):
    sku = shop.new_sku(stock=10, price=5000)
    item = product_item(shop, sku, points=400, cash=100, units=3)
    token, _ = member(shop, 500)
    refused(order_item(shop, token, item["item_id"], 2), 400, "POINTS_INSUFFICIENT")
    assert points_of(shop, token) == {"available": 500, "held": 0}
    assert ok(shop.call("GET", f"/v1/points-mall/items/{item['item_id']}", token=token))["item"]["units_left"] == "3"

    order = ok(order_item(shop, token, item["item_id"]))["order"]
    assert points_of(shop, token) == {"available": 100, "held": 400}
    ok(shop.call("POST", f"/v1/orders/{order['order_id']}:cancel", token=token, json={}))
    wait_until(lambda: points_of(shop, token) == {"available": 500, "held": 0}, message="the points come back")
    # An ended item is no longer ordered.
    ok(shop.as_staff("POST", f"/v1/staff/points-mall/items/{item['item_id']}:end", json={}))
    refused(order_item(shop, token, item["item_id"]), 400, "POINTS_MALL_NOT_OPEN")


def test_a_points_only_item_is_paid_at_once_and_its_full_refund_returns_every_point(shop: Shop):
    sku = shop.new_sku(stock=10, price=3000)
    item = product_item(shop, sku, points=200, cash=0)
    token, _ = member(shop, 200)
    order = ok(order_item(shop, token, item["item_id"]))["order"]
    assert order["payable"]["amount"] == "0"
    paid = ok(shop.call("POST", f"/v1/orders/{order['order_id']}:pay", token=token,
                        json={"idempotency_key": uuid.uuid4().hex}))["payment"]
    assert paid["state"] == "PAYMENT_STATE_SUCCEEDED", paid
    assert ok(shop.call("GET", f"/v1/orders/{order['order_id']}", token=token))["order"]["state"] == \
        "ORDER_STATE_PAID"
    wait_until(lambda: points_of(shop, token) == {"available": 0, "held": 0}, message="the points are spent")
    line = order["lines"][0]["line_id"]
    refund = ok(shop.as_staff("POST", f"/v1/staff/orders/{order['order_id']}/refunds", json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"line_id": line, "quantity": "1"}], "reason": "r"}))
    assert refund["refund"]["state"] == "REFUND_STATE_REFUNDED", refund
    wait_until(lambda: points_of(shop, token)["available"] == 200, message="every point comes back")


def test_a_coupon_redemption_issues_the_coupon_and_spends_the_points(shop: Shop):
    item = coupon_item(shop, coupon_template(shop), points=150, units=10, limit=2)
    token, _ = member(shop, 400)
    assert item["item_id"] in [i["item_id"] for i in
                               ok(shop.call("GET", "/v1/points-mall/coupons", token=token))["items"]]
    key = uuid.uuid4().hex
    done = ok(shop.call("POST", f"/v1/points-mall/coupons/{item['item_id']}:redeem", token=token,
                        json={"idempotency_key": key}))
    again = ok(shop.call("POST", f"/v1/points-mall/coupons/{item['item_id']}:redeem", token=token,
                         json={"idempotency_key": key}))
    assert done["redemption"]["state"] == "REDEMPTION_STATE_ISSUED" and again == done
    mine = ok(shop.call("GET", "/v1/me/coupons", token=token)).get("coupons", [])
    assert done["coupon"]["coupon_id"] in [c["coupon_id"] for c in mine]
    assert points_of(shop, token)["available"] == 250
    ok(redeem(shop, token, item["item_id"]))
    refused(redeem(shop, token, item["item_id"]), 400, "POINTS_MALL_LIMIT_REACHED")
    history = ok(shop.call("GET", "/v1/points-mall/redemptions", token=token))["redemptions"]
    assert [r["state"] for r in history] == ["REDEMPTION_STATE_ISSUED"] * 2
    assert points_of(shop, token)["available"] == 100
    staff = ok(shop.as_staff("GET", "/v1/staff/points-mall/coupons"))["items"]
    assert next(i for i in staff if i["item_id"] == item["item_id"])["units_left"] == "8"


def test_concurrent_redemptions_never_overspend_points_or_units(shop: Shop):
    # Points for 3 of 8 redemptions fired at once: exactly 3.
    item = coupon_item(shop, coupon_template(shop), points=100, units=50, limit=20)
    token, _ = member(shop, 300)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: redeem(shop, token, item["item_id"]), range(8)))
    assert sum(a.status_code == 200 for a in answers) == 3, [a.text for a in answers]
    assert all(a.json()["error"]["reason"] == "POINTS_INSUFFICIENT" for a in answers if a.status_code != 200)
    assert points_of(shop, token) == {"available": 0, "held": 0}
    # 2 units for 5 members at once: exactly 2, and the rest told it is sold out.
    scarce = coupon_item(shop, coupon_template(shop), points=10, units=2, limit=1)
    tokens = [member(shop, 100)[0] for _ in range(5)]
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda t: redeem(shop, t, scarce["item_id"]), tokens))
    assert sum(a.status_code == 200 for a in answers) == 2
    assert {a.json()["error"]["reason"] for a in answers if a.status_code != 200} == {"POINTS_MALL_SOLD_OUT"}
    # The same race for a product item's units and points.
    sku = shop.new_sku(stock=20, price=2000)
    product = product_item(shop, sku, points=100, cash=0, units=10, limit=10)
    rich, _ = member(shop, 200)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: order_item(shop, rich, product["item_id"]), range(5)))
    assert sum(a.status_code == 200 for a in answers) == 2, [a.text for a in answers]
    assert points_of(shop, rich) == {"available": 0, "held": 200}
    assert ok(shop.call("GET", f"/v1/points-mall/items/{product['item_id']}", token=rich))["item"][
        "units_left"] == "8", "the refused orders' units went back to the pool"


def test_every_points_mall_route_refuses_bad_input_other_merchants_and_the_wrong_role(shop: Shop, other_shop: Shop):
    token, _ = member(shop, 0)
    their_item = product_item(other_shop, other_shop.new_sku(stock=2, price=1000), points=10, cash=0, units=1)
    their_coupon = coupon_item(other_shop, coupon_template(other_shop), points=10, units=1, limit=1)
    pmi, pmc = their_item["item_id"], their_coupon["item_id"]
    # Bad input: 400 naming the field.
    staff_bad = [
        ("POST", "/v1/staff/points-mall/items", {"json": {"sku_id": "x", "idempotency_key": "k"}}, "sku_id"),
        ("PATCH", "/v1/staff/points-mall/items/pmi_x", {"json": {"expected_version": "1"}}, "item_id"),
        ("POST", "/v1/staff/points-mall/items/pmi_x:end", {"json": {}}, "item_id"),
        ("GET", "/v1/staff/points-mall/items", {"params": {"page_size": 500}}, "page_size"),
        ("POST", "/v1/staff/points-mall/coupons", {"json": {"template_id": "x", "idempotency_key": "k"}},
         "template_id"),
        ("PATCH", "/v1/staff/points-mall/coupons/pmc_x", {"json": {"expected_version": "1"}}, "item_id"),
        ("POST", "/v1/staff/points-mall/coupons/pmc_x:end", {"json": {}}, "item_id"),
        ("GET", "/v1/staff/points-mall/coupons", {"params": {"page_size": 500}}, "page_size"),
    ]
    for method, path, kw, field in staff_bad:
        refused(shop.as_staff(method, path, **kw), 400, fields={field})
    member_bad = [
        ("GET", "/v1/points-mall/items", {"params": {"page_size": 500}}, "page_size"),
        ("GET", "/v1/points-mall/items/pmi_x", {}, "item_id"),
        ("POST", "/v1/points-mall/items/pmi_x:order", {"json": {"idempotency_key": "k"}}, "item_id"),
        ("GET", "/v1/points-mall/coupons", {"params": {"page_size": 500}}, "page_size"),
        ("POST", "/v1/points-mall/coupons/pmc_x:redeem", {"json": {"idempotency_key": "k"}}, "item_id"),
        ("GET", "/v1/points-mall/redemptions", {"params": {"page_size": 500}}, "page_size"),
    ]
    for method, path, kw, field in member_bad:
        refused(shop.call(method, path, token=token, **kw), 400, fields={field})
    # Another merchant's items: not found (and absent from the lists).
    for method, path, kw in [
        ("PATCH", f"/v1/staff/points-mall/items/{pmi}", {"json": {"points_price": "5", "expected_version": "1"}}),
        ("POST", f"/v1/staff/points-mall/items/{pmi}:end", {"json": {}}),
        ("PATCH", f"/v1/staff/points-mall/coupons/{pmc}", {"json": {"points_price": "5", "expected_version": "1"}}),
        ("POST", f"/v1/staff/points-mall/coupons/{pmc}:end", {"json": {}}),
    ]:
        refused(shop.as_staff(method, path, **kw), 404)
    for method, path, kw in [
        ("GET", f"/v1/points-mall/items/{pmi}", {}),
        ("POST", f"/v1/points-mall/items/{pmi}:order", {"json": {"idempotency_key": "k"}}),
        ("POST", f"/v1/points-mall/coupons/{pmc}:redeem", {"json": {"idempotency_key": "k"}}),
    ]:
        refused(shop.call(method, path, token=token, **kw), 404)
    assert pmi not in [i["item_id"] for i in ok(shop.as_staff("GET", "/v1/staff/points-mall/items"))["items"]]
    assert pmc not in [i["item_id"] for i in ok(shop.call("GET", "/v1/points-mall/coupons", token=token))["items"]]
    refused(shop.as_staff("POST", "/v1/staff/points-mall/items", json={
        "sku_id": new_id("sku"), "points_price": "1", "units": "1", "idempotency_key": "k", **window()}), 404)
    # The wrong role: a GUIDE reaches no staff route; a member token none either, and a
    # staff token no member route.
    guide = staff_with(shop, "GUIDE")
    staff_routes = [
        ("POST", "/v1/staff/points-mall/items", {"json": {}}),
        ("PATCH", f"/v1/staff/points-mall/items/{pmi}", {"json": {}}),
        ("POST", f"/v1/staff/points-mall/items/{pmi}:end", {"json": {}}),
        ("GET", "/v1/staff/points-mall/items", {}),
        ("POST", "/v1/staff/points-mall/coupons", {"json": {}}),
        ("PATCH", f"/v1/staff/points-mall/coupons/{pmc}", {"json": {}}),
        ("POST", f"/v1/staff/points-mall/coupons/{pmc}:end", {"json": {}}),
        ("GET", "/v1/staff/points-mall/coupons", {}),
    ]
    for method, path, kw in staff_routes:
        refused(shop.call(method, path, channel=None, token=guide, **kw), 403)
    for method, path, kw in [("GET", "/v1/points-mall/items", {}), ("GET", f"/v1/points-mall/items/{pmi}", {}),
                             ("POST", f"/v1/points-mall/items/{pmi}:order", {"json": {}}),
                             ("GET", "/v1/points-mall/coupons", {}),
                             ("POST", f"/v1/points-mall/coupons/{pmc}:redeem", {"json": {}}),
                             ("GET", "/v1/points-mall/redemptions", {})]:
        assert shop.call(method, path, token=guide, **kw).status_code in (401, 403)


def test_every_route_of_both_blocks_is_named_by_a_case():
    assert len(ROUTES) == 14
    assert_routes_named(__file__, ROUTES)


# Every RPC of the block by name: a new one fails here until its route table above has a case.
BLOCK_RPCS = {
    "CreatePointsMallCoupon",
    "CreatePointsMallItem",
    "EndPointsMallCoupon",
    "EndPointsMallItem",
    "GetPointsMallItem",
    "ListMyRedemptions",
    "ListPointsMallCoupons",
    "ListPointsMallItems",
    "ListStaffPointsMallCoupons",
    "ListStaffPointsMallItems",
    "PlacePointsMallOrder",
    "RedeemPointsMallCoupon",
    "UpdatePointsMallCoupon",
    "UpdatePointsMallItem",
}


def test_the_route_table_covers_exactly_these_rpcs():
    assert set(ROUTES) == BLOCK_RPCS
