"""Database round trips of paying an order wholly with balance through the gateway,
summed over every service it touches (see test_round_trips for how they are counted).
Needs the member service's stored value; skipped until it implements it."""
from __future__ import annotations

import functools
import uuid

import httpx

from scripts.seed import Clients, seed_merchant
from tests.support import db_round_trips, round_trips_per_run, wait_until

ORDERS = 10
# Commands per order paid wholly with balance, all services together: measured 18.4 (order
# PayOrder 10: the payment by key, the order, the hold asked for and held on the order,
# the payment added, succeeded, applied to the order, the balance's ledger entry and the
# payment closed; member HoldBalance 2, CaptureBalance 6.2, token versions 0.2), plus
# what rounds that up.
BUDGET_PER_PAYMENT = 20


def test_paying_wholly_with_balance_stays_within_the_round_trip_budget(stack):
    tag = uuid.uuid4().hex[:10]
    shop = seed_merchant(Clients.from_env(stack.env()), f"svtrips-{tag}", f"SV trips {tag}",
                         {"H5": f"key-h5-{tag}"}, ("owner", f"pass-{tag}"))
    sku = shop["products"]["tee-organic"]["skus"][0]
    with httpx.Client(base_url=stack.gateway_url, headers={"X-Api-Key": shop["api_keys"]["H5"]},
                      timeout=30) as http:
        staff = http.post("/v1/staff/login", headers={"X-Api-Key": ""}, json={
            "merchant_code": shop["merchant_code"], "username": shop["staff_username"],
            "password": shop["staff_password"]})
        assert staff.status_code == 200, staff.text
        staff_auth = {"Authorization": f"Bearer {staff.json()['access_token']}"}
        package = http.post("/v1/staff/recharge-packages", headers=staff_auth, json={
            "name": "big", "price": "100000000", "bonus": "0", "idempotency_key": tag})
        assert package.status_code == 200, package.text
        login = http.post("/v1/auth/login", json={"code": f"sandbox:union-svtrips-{tag}"})
        assert login.status_code == 200, login.text
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        def paid(order_id: str, use_balance: bool) -> dict:
            resp = http.post(f"/v1/orders/{order_id}:pay", headers=auth,
                             json={"idempotency_key": uuid.uuid4().hex, "use_balance": use_balance})
            assert resp.status_code == 200, resp.text
            return resp.json()["payment"]

        recharge = http.post("/v1/me/recharge-orders", headers=auth, json={
            "package_id": package.json()["package"]["package_id"], "idempotency_key": tag})
        assert recharge.status_code == 200, recharge.text
        payment = paid(recharge.json()["order"]["order_id"], use_balance=False)
        done = http.post(f"/v1/sandbox/payments/{payment['payment_id']}:complete", headers=auth, json={})
        assert done.status_code == 200, done.text

        def place() -> str:
            resp = http.post("/v1/orders", headers=auth, json={
                "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 1}]})
            assert resp.status_code == 200, resp.text
            return resp.json()["order"]["order_id"]

        wait_until(lambda: int(http.get("/v1/me/balance", headers=auth).json().get("balance", {})
                               .get("available", 0)) > 0, message="the recharge credited")
        order_ids = [place() for _ in range(ORDERS + 1)]
        def pay_with_balance(order_id: str) -> None:
            assert paid(order_id, use_balance=True)["method"] == "PAYMENT_METHOD_BALANCE"

        spent, per_payment, breakdown = round_trips_per_run(
            lambda: db_round_trips(stack), [functools.partial(pay_with_balance, o) for o in order_ids])

    assert spent[("order", "PayOrder")] > 0, f"the order service counted nothing for PayOrder: {breakdown}"
    assert per_payment <= BUDGET_PER_PAYMENT, (
        f"{per_payment:g} database round trips per order paid with balance, budget {BUDGET_PER_PAYMENT}: "
        f"{breakdown}")
