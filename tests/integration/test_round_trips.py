"""Database round trips of the hot path: placing an order through the gateway costs at
most a budgeted number of MongoDB commands, summed over every service it touches.

The services count each command by the RPC it ran for (`siyu_db_commands_total`); work
the relay, consumers and jobs do later is labelled "background" and is not part of the
synchronous path.
"""
from __future__ import annotations

import contextlib
import functools
import uuid
from typing import Iterator

import httpx

from scripts.seed import Clients, seed_merchant
from tests.support import db_round_trips as all_round_trips, round_trips_per_run

# Counted by RPC but not per order: the gateway asks a member's token version at most once
# per 2 s whatever it does, and other tests' jobs on the same suite resolve reservations and
# refund recharge orders. How many fall into the window depends on the machine's speed.
NOT_PER_ORDER = {("member", "GetTokenVersions"), ("order", "ResolveReservation"), ("order", "RefundRechargeOrder")}


@contextlib.contextmanager
def signed_in_member(stack, prefix: str) -> Iterator[tuple[httpx.Client, dict, str]]:
    """A new merchant's H5 client, a member signed in there and a SKU of its demo catalogue."""
    tag = uuid.uuid4().hex[:10]
    shop = seed_merchant(Clients.from_env(stack.env()), f"{prefix}-{tag}", f"{prefix.title()} {tag}",
                         {"H5": f"key-h5-{tag}"}, ("owner", f"pass-{tag}"))
    with httpx.Client(base_url=stack.gateway_url, headers={"X-Api-Key": shop["api_keys"]["H5"]},
                      timeout=30) as http:
        login = http.post("/v1/auth/login", json={"code": f"sandbox:union-{prefix}-{tag}"})
        assert login.status_code == 200, login.text
        yield http, {"Authorization": f"Bearer {login.json()['access_token']}"}, \
            shop["products"]["tee-organic"]["skus"][0]


def db_round_trips(stack):
    counts = all_round_trips(stack)
    for key in NOT_PER_ORDER:
        counts.pop(key, None)
    return counts

ORDERS = 20
# Commands per placed one-line order, all services together, with warm caches: measured 9
# — catalog GetSkus 2 + ReserveStock 3 (the reservation's insert, the hold, the confirm:
# the SKUs are read only when a hold fails, and the hold's ledger movement is stored by
# the ledger writer job), member GetShippingAddress 1 (read on every order, so a member who
# changes the default and orders at once ships to the new one) + ResolveReferral 1 (the
# buyer's bindings; the distribution settings are kept 5 s) + GetMemberPricing 0 (the
# growth is kept until a points event of the member), order PlaceOrder 2 — plus one for a
# settings read when the 5 s run out during the loop.
BUDGET_PER_ORDER = 10


def test_placing_a_one_line_order_stays_within_the_round_trip_budget(stack):
    with signed_in_member(stack, "trips") as (http, auth, sku):

        def place() -> None:
            resp = http.post("/v1/orders", headers=auth, json={
                "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}]})
            assert resp.status_code == 200, resp.text

        spent, per_order, breakdown = round_trips_per_run(lambda: db_round_trips(stack), [place] * (ORDERS + 1))

    assert spent[("order", "PlaceOrder")] > 0, f"the order service counted nothing for PlaceOrder: {breakdown}"
    assert per_order <= BUDGET_PER_ORDER, (
        f"{per_order:g} database round trips per placed order, budget {BUDGET_PER_ORDER}: {breakdown}")


VALUE_ORDERS = 10
# Commands per placed one-line order that uses a coupon and points, all services together:
# measured 19 — the plain order's 9, plus the value hold intent (insert and delete: order
# PlaceOrder 4 instead of 2) and, on the member service, QuoteCoupon 1, LockCoupon 2,
# GetPointsTerms 1 and HoldPoints 4 — plus two: the distribution settings and the order
# service's own settings are kept for seconds, and on a busy machine the loop outlasts them.
BUDGET_PER_VALUE_ORDER = 21


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

    spent, per_order, breakdown = round_trips_per_run(lambda: db_round_trips(stack),
                                                      [functools.partial(place, c) for c in coupons])
    assert spent[("member", "LockCoupon")] > 0 and spent[("member", "HoldPoints")] > 0, breakdown
    assert per_order <= BUDGET_PER_VALUE_ORDER, (
        f"{per_order:g} database round trips per order with a coupon and points, budget "
        f"{BUDGET_PER_VALUE_ORDER}: {breakdown}")


PAID_ORDERS = 10
# Commands per paid one-line order (place, pay, sandbox complete), all services together:
# measured 18 — placing's 9 plus GetMemberPricing 1 (a paid order earns growth, so the
# member's next order reads it again), order PayOrder 2 (the order read, the payment
# inserted: a repeated key is read only when the insert finds it) and
# CompleteSandboxPayment 6 (the payment read once, its success saved, the order read and
# saved, the ledger entry, the payment closed) — plus two for settings kept for seconds
# that a slow loop outlasts (18.8 on a machine at load 20).
BUDGET_PER_PAID_ORDER = 20


def test_a_paid_checkout_stays_within_its_round_trip_budget(stack):
    with signed_in_member(stack, "paid") as (http, auth, sku):

        def call(path: str, body: dict) -> dict:
            resp = http.post(path, headers=auth, json=body)
            assert resp.status_code == 200, resp.text
            return resp.json()

        def checkout() -> None:
            order = call("/v1/orders", {"idempotency_key": uuid.uuid4().hex,
                                        "lines": [{"sku_id": sku, "quantity": 1}]})["order"]
            payment = call(f"/v1/orders/{order['order_id']}:pay", {"idempotency_key": uuid.uuid4().hex})["payment"]
            done = call(f"/v1/sandbox/payments/{payment['payment_id']}:complete", {})
            assert done["payment"]["state"] == "PAYMENT_STATE_SUCCEEDED"

        spent, per_order, breakdown = round_trips_per_run(lambda: db_round_trips(stack),
                                                          [checkout] * (PAID_ORDERS + 1))

    assert spent[("order", "CompleteSandboxPayment")] > 0, breakdown
    assert per_order <= BUDGET_PER_PAID_ORDER, (
        f"{per_order:g} database round trips per paid order, budget {BUDGET_PER_PAID_ORDER}: {breakdown}")
