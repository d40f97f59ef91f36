"""A crash at the worst moment of checkout: the order service dies after the catalog has
reserved the stock and before the order is written. Nothing may stay stuck."""
from __future__ import annotations

import uuid
from collections import Counter

import httpx

from siyu_kit import faults
from tests.support import wait_until
import pytest

# Slow failure scenarios: `make chaos` runs them (see the Makefile).
pytestmark = pytest.mark.chaos

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

AFTER_RESERVE = "order.place.after_reserve"
UNPAID_EXPIRY_S = 3


def my_orders(shop, token) -> httpx.Response:
    return shop.call("GET", "/v1/orders", token=token)


def test_a_crash_between_reserving_and_writing_the_order_leaves_no_stuck_stock(stack, shop):
    # The reservation made for the order expires with the merchant's unpaid expiry.
    shop.update_order_settings(unpaid_expiry_seconds=str(UNPAID_EXPIRY_S))
    sku = shop.new_sku(stock=5)
    token = shop.login("union-crash")["access_token"]
    before = shop.stock(sku)
    assert before == {"on_hand": 5, "reserved": 0, "available": 5}

    stack.stop("order")
    try:
        stack.start_service("order", extra_env={faults.ENV: AFTER_RESERVE})
        stack.wait_services_serving(["order"], timeout=60)
        # The gateway reaches it again: its channel's reconnect backoff grew while the service was away.
        stack.wait_ready(timeout=150)
        doomed = stack.procs["order"]
        try:
            placed = shop.call("POST", "/v1/orders", token=token, json={
                "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 2}]})
            assert placed.status_code == 503, placed.text
            assert placed.json()["error"]["code"] == "UNAVAILABLE"
        except httpx.TransportError:
            pass  # the connection dropped with the process: also what a front end may see
        assert doomed.wait(timeout=30) == faults.EXIT_CODE
        # The catalog did reserve before the crash: this is the stock that must come back.
        assert shop.stock(sku) == {"on_hand": 5, "reserved": 2, "available": 3}
    finally:
        stack.stop("order")
        stack.start_service("order")
        stack.wait_services_serving(["order"], timeout=60)
        # The gateway reaches it again: its channel's reconnect backoff grew while the service was away.
        stack.wait_ready(timeout=150)

    wait_until(lambda: my_orders(shop, token).status_code == 200, timeout=30,
               message="the gateway reaches the restarted order service")
    assert my_orders(shop, token).json().get("orders", []) == []
    wait_until(lambda: shop.stock(sku) == before, timeout=30, message="the sweeper released the orphan reservation")
    audit = shop.audit(sku)
    assert audit["consistent"] is True, audit
    assert {k: int(v) for k, v in audit["stock"].items() if k != "sku_id"} == before
    kinds = Counter(m["kind"] for m in audit["movements"])
    assert (kinds["RESERVE"], kinds["RELEASE"], kinds["COMMIT"]) == (1, 1, 0), kinds

    # The restarted service sells normally.
    again = shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": 2}]})
    assert again.status_code == 200, again.text
    assert shop.stock(sku) == {"on_hand": 5, "reserved": 2, "available": 3}
