"""Database round trips of the hot path: placing an order through the gateway costs at
most a budgeted number of MongoDB commands, summed over every service it touches.

The services count each command by the RPC it ran for (`siyu_db_commands_total`); work
the relay, consumers and jobs do later is labelled "background" and is not part of the
synchronous path.
"""
from __future__ import annotations

import uuid
from collections import Counter

import httpx

from scripts.seed import Clients, seed_merchant
from siyu_kit.config import SERVICE_NAMES
from siyu_kit.metrics import db_commands

ORDERS = 20
# Commands per placed one-line order, all services together: measured 12 (catalog
# GetSkus 2 + ReserveStock 6, member GetMemberPricing 1 + GetShippingAddress 1, order
# PlaceOrder 2), plus one. GetShippingAddress was 0 while the order service remembered a
# member's default address for 30 s; it is read on every order now, so a member who
# changes the default and orders at once ships to the new one.
BUDGET_PER_ORDER = 13


def snapshot(stack) -> Counter:
    counts = Counter()
    for service in SERVICE_NAMES:
        for rpc, value in db_commands(stack.metrics_url(service)).items():
            if rpc != "background":
                counts[(service, rpc)] += value
    return counts


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
        before = snapshot(stack)
        for _ in range(ORDERS):
            place()
        spent = snapshot(stack) - before

    per_order = sum(spent.values()) / ORDERS
    breakdown = ", ".join(f"{service}.{rpc}={count / ORDERS:g}" for (service, rpc), count in sorted(spent.items()))
    assert spent[("order", "PlaceOrder")] > 0, f"the order service counted nothing for PlaceOrder: {breakdown}"
    assert per_order <= BUDGET_PER_ORDER, (
        f"{per_order:g} database round trips per placed order, budget {BUDGET_PER_ORDER}: {breakdown}")
