"""Coupons and points through checkout, through the gateway and the real services: the
quote applies a coupon and points and shows the points terms; placing locks the coupon
and holds the points; paying uses and spends them; cancelling gives them back; a refund
returns the refunded units' points; two orders racing for one coupon, or for more points
than the member has, never both win; bad input is a 400 naming the field and holds
nothing."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from siyu_kit import faults
from tests.support import wait_until
from tests.support.shop import Shop, ok, refused

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

AFTER_VALUE_HOLD = "order.place.after_value_hold"
AVAILABLE, LOCKED, USED = ("MEMBER_COUPON_STATE_AVAILABLE", "MEMBER_COUPON_STATE_LOCKED",
                           "MEMBER_COUPON_STATE_USED")


def template(shop: Shop, **rule) -> str:
    design = {"name": "满100减10", "rule": {"kind": "COUPON_KIND_AMOUNT_OFF", "threshold": "10000",
                                          "amount_off": "1000", "scope": "COUPON_SCOPE_ALL", **rule},
              "validity": {"days": 7}, "total": "0", "per_member_limit": 5,
              "idempotency_key": uuid.uuid4().hex}
    made = ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json=design))["template"]
    ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{made['template_id']}:setState",
                     json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}))
    return made["template_id"]


def member_with(shop: Shop, points: int, template_id: str) -> tuple[str, str, str]:
    """A member holding `points` available points and one coupon: (token, member id, coupon id)."""
    done = shop.login("mv-" + uuid.uuid4().hex[:10])
    token, member_id = done["access_token"], done["member"]["member_id"]
    if points:
        ok(shop.as_staff("POST", f"/v1/staff/members/{member_id}/points:adjust",
                         json={"points": str(points), "reason": "test", "idempotency_key": uuid.uuid4().hex}))
    coupon = ok(shop.call("POST", "/v1/me/coupons", token=token,
                          json={"template_id": template_id, "idempotency_key": uuid.uuid4().hex}))["coupon"]
    return token, member_id, coupon["coupon_id"]


def points_of(shop: Shop, token: str) -> dict:
    p = ok(shop.call("GET", "/v1/me/points", token=token))
    return {k: int(p.get(k, 0)) for k in ("balance", "available", "held")}


def coupon_state(shop: Shop, token: str, coupon_id: str) -> str:
    mine = ok(shop.call("GET", "/v1/me/coupons", token=token)).get("coupons", [])
    return next(c["state"] for c in mine if c["coupon_id"] == coupon_id)


def place(shop: Shop, token: str, sku: str, quantity: int, **ask):
    return shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": quantity}], **ask})


def test_quote_place_pay_and_refund_with_a_coupon_and_points(shop):
    tid = template(shop)
    token, _, coupon_id = member_with(shop, 1000, tid)
    sku = shop.new_sku(stock=10, price=10000)
    ask = {"coupon_id": coupon_id, "points": "400"}

    quote = ok(shop.call("POST", "/v1/checkout:quote", token=token,
                         json={"lines": [{"sku_id": sku, "quantity": 2}], **ask}))["quote"]
    assert quote["coupon"]["coupon_id"] == coupon_id and quote["coupon"]["amount"]["amount"] == "1000"
    assert quote["points_used"] == "400" and quote["points_discount"]["amount"] == "400"
    # Up to half of what is left after the coupon (¥190 → ¥95), in steps: all 1,000 points.
    assert quote["points_terms"]["available"] == "1000" and quote["points_terms"]["max_usable"] == "1000"
    steps = {s["step"]: s["amount"]["amount"] for s in quote["lines"][0]["steps"]}
    assert steps == {"COUPON": "1000", "POINTS": "400"}
    assert quote["payable"]["amount"] == str(20000 - 1000 - 400)

    order = ok(place(shop, token, sku, 2, **ask))["order"]
    assert order["payable"] == quote["payable"], "the quote is what the order charges"
    assert order["coupon"]["coupon_id"] == coupon_id and order["points_used"] == "400"
    assert order["lines"][0]["coupon_share"]["amount"] == "1000"
    assert order["lines"][0]["points_share"]["amount"] == "400"
    assert coupon_state(shop, token, coupon_id) == LOCKED
    assert points_of(shop, token) == {"balance": 1000, "available": 600, "held": 400}

    shop.pay(token, order["order_id"])
    wait_until(lambda: coupon_state(shop, token, coupon_id) == USED, message="the coupon is used")
    wait_until(lambda: points_of(shop, token)["held"] == 0, message="the held points are spent")
    assert points_of(shop, token)["available"] == 600
    # The template's numbers count the paid order at what it charged.
    stats = ok(shop.as_staff("GET", f"/v1/staff/coupon-templates/{tid}/stats"))
    assert (stats["used"], stats["discount_given"], stats["gmv"]) == ("1", "1000", order["payable"]["amount"])

    # One of the two units back: its half of the 400 spent points comes back.
    line = order["lines"][0]["line_id"]
    refund = ok(shop.as_staff("POST", f"/v1/staff/orders/{order['order_id']}/refunds", json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"line_id": line, "quantity": "1"}], "reason": "r"}))
    assert refund["refund"]["state"] == "REFUND_STATE_REFUNDED", refund
    wait_until(lambda: points_of(shop, token)["available"] == 800, message="the refunded unit's points return")


def test_cancelling_an_unpaid_order_gives_the_coupon_and_points_back(shop):
    tid = template(shop)
    token, _, coupon_id = member_with(shop, 500, tid)
    sku = shop.new_sku(stock=5, price=15000)
    order = ok(place(shop, token, sku, 1, best_coupon=True, points="300"))["order"]
    assert order["coupon"]["coupon_id"] == coupon_id, "the best coupon is the member's only one"
    assert points_of(shop, token)["held"] == 300
    ok(shop.call("POST", f"/v1/orders/{order['order_id']}:cancel", token=token, json={}))
    wait_until(lambda: coupon_state(shop, token, coupon_id) == AVAILABLE, message="the coupon comes back")
    wait_until(lambda: points_of(shop, token) == {"balance": 500, "available": 500, "held": 0},
               message="the points come back")


def test_two_orders_racing_one_coupon_or_too_many_points_one_wins(shop):
    tid = template(shop)
    token, _, coupon_id = member_with(shop, 300, tid)
    sku = shop.new_sku(stock=20, price=10000)
    with ThreadPoolExecutor(4) as pool:
        coupon_race = list(pool.map(lambda _: place(shop, token, sku, 2, coupon_id=coupon_id), range(4)))
    won = [r for r in coupon_race if r.status_code == 200]
    assert len(won) == 1, [r.text for r in coupon_race]
    assert {r.json()["error"]["reason"] for r in coupon_race if r.status_code != 200} <= {
        "COUPON_IN_USE", "COUPON_NOT_AVAILABLE", "ABORTED"}

    # 300 points, three orders of 200 each: one holds them, the others are refused.
    with ThreadPoolExecutor(3) as pool:
        points_race = list(pool.map(lambda _: place(shop, token, sku, 1, points="200"), range(3)))
    held = [r for r in points_race if r.status_code == 200]
    assert len(held) == 1, [r.text for r in points_race]
    assert {r.json()["error"]["reason"] for r in points_race if r.status_code != 200} <= {
        "POINTS_INSUFFICIENT", "ABORTED"}
    assert points_of(shop, token) == {"balance": 300, "available": 100, "held": 200}
    # Stock of refused orders went back: 2 + 1 units held by the two orders that stand.
    assert shop.stock(sku)["reserved"] == 3


def test_bad_value_asks_are_refused_and_hold_nothing(shop):
    tid = template(shop)
    token, _, coupon_id = member_with(shop, 500, tid)
    sku = shop.new_sku(stock=5, price=10000)
    refused(place(shop, token, sku, 1, coupon_id="cpn_bad", points="-100"), 400, fields={"coupon_id", "points"})
    refused(place(shop, token, sku, 1, coupon_id=coupon_id, best_coupon=True), 400, fields={"best_coupon"})
    refused(place(shop, token, sku, 1, points="150"), 400, fields={"points"})
    refused(place(shop, token, sku, 1, points="600"), 400, "POINTS_INSUFFICIENT")
    refused(shop.call("POST", "/v1/checkout:quote", token=token, json={
        "lines": [{"sku_id": sku, "quantity": 1}], "points": "5100"}), 400, "POINTS_INSUFFICIENT")
    # Below the coupon's threshold: the member service's reason, nothing written.
    cheap = shop.new_sku(stock=5, price=5000)
    refused(place(shop, token, cheap, 1, coupon_id=coupon_id), 400, "COUPON_BELOW_THRESHOLD")
    assert ok(shop.call("GET", "/v1/orders", token=token)).get("orders", []) == []
    assert coupon_state(shop, token, coupon_id) == AVAILABLE
    assert points_of(shop, token) == {"balance": 500, "available": 500, "held": 0}
    assert shop.stock(sku)["reserved"] == 0 and shop.stock(cheap)["reserved"] == 0


@pytest.mark.chaos  # a process killed mid-placement: `make chaos`
def test_a_crash_between_holding_and_writing_the_order_releases_coupon_and_points(stack, shop):
    """The order service dies after the coupon is locked and the points held, before the
    order is written: once the sweep runs, the coupon is AVAILABLE and the points are back
    (and the catalog's sweeper frees the stock, as for any crash after reserving)."""
    tid = template(shop)
    token, _, coupon_id = member_with(shop, 500, tid)
    sku = shop.new_sku(stock=5, price=10000)
    quick_sweep = {"SIYU_ORDER_VALUE_HOLD_GRACE_S": "4", "SIYU_ORDER_VALUE_SWEEP_INTERVAL_S": "1"}
    stack.stop("order")
    try:
        stack.start_service("order", extra_env={faults.ENV: AFTER_VALUE_HOLD, **quick_sweep})
        stack.wait_services_serving(["order"], timeout=60)
        # The gateway reaches it again: its channel's reconnect backoff grew while the service was away.
        stack.wait_ready(timeout=150)
        doomed = stack.procs["order"]
        try:
            placed = place(shop, token, sku, 2, coupon_id=coupon_id, points="300")
            assert placed.status_code == 503, placed.text
        except httpx.TransportError:
            pass  # the connection dropped with the process
        assert doomed.wait(timeout=30) == faults.EXIT_CODE
        assert coupon_state(shop, token, coupon_id) == LOCKED
        assert points_of(shop, token) == {"balance": 500, "available": 200, "held": 300}
        stack.start_service("order", extra_env=quick_sweep)
        stack.wait_services_serving(["order"], timeout=60)
        # The gateway reaches it again: its channel's reconnect backoff grew while the service was away.
        stack.wait_ready(timeout=150)
        wait_until(lambda: coupon_state(shop, token, coupon_id) == AVAILABLE, timeout=30,
                   message="the sweep released the coupon of the order never written")
        wait_until(lambda: points_of(shop, token) == {"balance": 500, "available": 500, "held": 0}, timeout=30,
                   message="the sweep released the points")
        assert ok(shop.call("GET", "/v1/orders", token=token)).get("orders", []) == []
    finally:
        stack.stop("order")
        stack.start_service("order")
        stack.wait_services_serving(["order"], timeout=60)
        # The gateway reaches it again: its channel's reconnect backoff grew while the service was away.
        stack.wait_ready(timeout=150)
    again = ok(place(shop, token, sku, 2, coupon_id=coupon_id, points="300"))["order"]
    assert again["coupon"]["coupon_id"] == coupon_id and again["points_used"] == "300"
