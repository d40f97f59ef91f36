"""Database round trips of the hot path: placing an order through the gateway costs at
most a budgeted number of MongoDB commands, summed over every service it touches.

The services count each command by the RPC it ran for (`siyu_db_commands_total`); work
the relay, consumers and jobs do later is labelled "background" and is not part of the
synchronous path.
"""
from __future__ import annotations

import uuid

import httpx

from scripts.seed import Clients, seed_merchant
from tests.support import db_round_trips as all_round_trips

# Counted by RPC but not per order: the gateway asks a member's token version at most once
# per 2 s whatever it does, and other tests' jobs on the same suite resolve reservations and
# refund recharge orders. How many fall into the window depends on the machine's speed.
NOT_PER_ORDER = {("member", "GetTokenVersions"), ("order", "ResolveReservation"), ("order", "RefundRechargeOrder")}


def db_round_trips(stack):
    counts = all_round_trips(stack)
    for key in NOT_PER_ORDER:
        counts.pop(key, None)
    return counts

ORDERS = 20
# Commands per placed one-line order, all services together: measured 12 (catalog
# GetSkus 2 + ReserveStock 6, member GetMemberPricing 1 + GetShippingAddress 1, order
# PlaceOrder 2), plus one. GetShippingAddress was 0 while the order service remembered a
# member's default address for 30 s; it is read on every order now, so a member who
# changes the default and orders at once ships to the new one. Member ResolveReferral (who
# the order is credited to: the merchant's distribution settings and the buyer's bindings)
# is asked on every order too, 2 commands for a buyer bound to nobody: 14, plus one.
BUDGET_PER_ORDER = 15


def test_placing_a_one_line_order_stays_within_the_round_trip_budget(stack):
    tag = uuid.uuid4().hex[:10]
    shop = seed_merchant(Clients.from_env(stack.env()), f"trips-{tag}", f"Trips {tag}", {"H5": f"key-h5-{tag}"},
                         ("owner", f"pass-{tag}"))
    sku = shop["products"]["tee-organic"]["skus"][0]
    with httpx.Client(base_url=stack.gateway_url, headers={"X-Api-Key": shop["api_keys"]["H5"]},
                      timeout=30) as http:
        login = http.post("/v1/auth/login", json={"code": f"sandbox:union-trips-{tag}"})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        def place() -> None:
            resp = http.post("/v1/orders", headers=auth, json={
                "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}]})
            assert resp.status_code == 200, resp.text

        # One order first, so every cache on the path is warm, as it is in steady state.
        place()
        before = db_round_trips(stack)
        for _ in range(ORDERS):
            place()
        spent = db_round_trips(stack) - before

    per_order = sum(spent.values()) / ORDERS
    breakdown = ", ".join(f"{service}.{rpc}={count / ORDERS:g}" for (service, rpc), count in sorted(spent.items()))
    assert spent[("order", "PlaceOrder")] > 0, f"the order service counted nothing for PlaceOrder: {breakdown}"
    assert per_order <= BUDGET_PER_ORDER, (
        f"{per_order:g} database round trips per placed order, budget {BUDGET_PER_ORDER}: {breakdown}")


VALUE_ORDERS = 10
# Commands per placed one-line order that uses a coupon and points, all services together:
# measured 22 — the plain order's 12, plus the value hold intent (insert and delete: order
# PlaceOrder 4 instead of 2) and, on the member service, QuoteCoupon 1, LockCoupon 2,
# GetPointsTerms 1 and HoldPoints 4 — and ResolveReferral's 2 (24), plus one.
BUDGET_PER_VALUE_ORDER = 25


def test_placing_an_order_with_a_coupon_and_points_stays_within_its_budget(stack):
    from tests.support.shop import make_shop, ok

    shop = make_shop(stack)
    sku = shop.new_sku(stock=100, price=10000)
    made = ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json={
        "name": "满100减10", "rule": {"kind": "COUPON_KIND_AMOUNT_OFF", "threshold": "10000", "amount_off": "1000",
                                     "scope": "COUPON_SCOPE_ALL"},
        "validity": {"days": 7}, "total": "0", "per_member_limit": VALUE_ORDERS + 1,
        "idempotency_key": uuid.uuid4().hex}))["template"]
    tid = made["template_id"]
    ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{tid}:setState",
                     json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}))
    login = shop.login("union-value-trips-" + uuid.uuid4().hex[:8])
    token, member_id = login["access_token"], login["member"]["member_id"]
    ok(shop.as_staff("POST", f"/v1/staff/members/{member_id}/points:adjust", json={
        "points": str(100 * (VALUE_ORDERS + 1)), "reason": "budget", "idempotency_key": uuid.uuid4().hex}))
    coupons = [ok(shop.call("POST", "/v1/me/coupons", token=token, json={
        "template_id": tid, "idempotency_key": uuid.uuid4().hex}))["coupon"]["coupon_id"]
        for _ in range(VALUE_ORDERS + 1)]

    def place(coupon_id: str) -> None:
        order = ok(shop.call("POST", "/v1/orders", token=token, json={
            "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}],
            "coupon_id": coupon_id, "points": "100"}))["order"]
        assert order["coupon"]["coupon_id"] == coupon_id and order["points_used"] == "100"

    place(coupons[0])  # warm caches, as in steady state
    before = db_round_trips(stack)
    for coupon_id in coupons[1:]:
        place(coupon_id)
    spent = db_round_trips(stack) - before

    per_order = sum(spent.values()) / VALUE_ORDERS
    breakdown = ", ".join(f"{service}.{rpc}={count / VALUE_ORDERS:g}"
                          for (service, rpc), count in sorted(spent.items()))
    assert spent[("member", "LockCoupon")] > 0 and spent[("member", "HoldPoints")] > 0, breakdown
    assert per_order <= BUDGET_PER_VALUE_ORDER, (
        f"{per_order:g} database round trips per order with a coupon and points, budget "
        f"{BUDGET_PER_VALUE_ORDER}: {breakdown}")
