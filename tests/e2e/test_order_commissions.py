"""Commissions on orders through the gateway, as far as the order and catalog services show
them: a product excluded from commission (on the product, its SKUs and the order's lines,
which the order service learns from GetSkus), an order nobody is credited with owing no
commission, and refunds of a completed order after its after-sales window — OWNER and
FINANCE only."""
from __future__ import annotations

import uuid

from tests.support.shop import ok, refused, staff_with

ROLES = ("OPERATOR", "FINANCE")


def _order(shop, token: str, *skus: str) -> dict:
    return ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": s, "quantity": "1"} for s in skus]}))["order"]


def test_an_excluded_product_shows_it_and_its_order_lines_earn_nothing(shop):
    excluded = shop.new_product(5, price=3000, commission_excluded=True)
    plain = shop.new_product(5, price=2000)
    shown = ok(shop.call("GET", f"/v1/products/{excluded['product_id']}"))["product"]
    assert shown["commission_excluded"] is True and shown["skus"][0]["commission_excluded"] is True
    assert not ok(shop.call("GET", f"/v1/products/{plain['product_id']}"))["product"].get("commission_excluded")

    token = shop.login(f"union-cx-{uuid.uuid4().hex[:8]}")["access_token"]
    order = _order(shop, token, excluded["skus"][0]["sku_id"], plain["skus"][0]["sku_id"])
    assert [line.get("commission_eligible", False) for line in order["lines"]] == [False, True]
    shop.pay(token, order["order_id"])
    staff_view = ok(shop.as_staff("GET", f"/v1/staff/orders/{order['order_id']}"))["order"]
    assert staff_view["state"] == "ORDER_STATE_PAID"
    # Nobody is credited with this buyer's orders: no referral, no commission.
    assert "referral" not in staff_view and staff_view.get("commissions", []) == []


def test_a_completed_order_past_its_window_is_refunded_by_finance_never_by_an_operator(shop):
    shop.update_order_settings(after_sales_days=0)
    sku = shop.new_sku(5, price=4000)
    token = shop.login(f"union-aw-{uuid.uuid4().hex[:8]}")["access_token"]
    order = _order(shop, token, sku)
    order_id = order["order_id"]
    line = order["lines"][0]["line_id"]
    shop.pay(token, order_id)
    ok(shop.as_staff("POST", f"/v1/staff/orders/{order_id}:ship", json={"carrier": "SF", "tracking_number": "SF1"}))
    done = ok(shop.call("POST", f"/v1/orders/{order_id}:confirmReceipt", token=token, json={}))["order"]
    assert done["state"] == "ORDER_STATE_COMPLETED"

    def refund(staff_token: str, after_window: bool):
        return shop.call("POST", f"/v1/staff/orders/{order_id}/refunds", channel=None, token=staff_token, json={
            "idempotency_key": uuid.uuid4().hex, "lines": [{"line_id": line, "quantity": "1"}],
            "reason": "complaint", "after_window": after_window})

    operator, finance = (staff_with(shop, role) for role in ROLES)
    refused(refund(finance, False), 400, "AFTER_SALES_CLOSED")
    refused(refund(operator, True), 403, "AFTER_WINDOW_REFUND_NOT_ALLOWED")
    assert ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}"))["order"].get("refunded_amount", {}).get(
        "amount", "0") == "0"
    late = ok(refund(finance, True))["refund"]
    assert late["state"] == "REFUND_STATE_REFUNDED" and late["amount"]["amount"] == "4000"
    mine = ok(shop.call("GET", f"/v1/orders/{order_id}", token=token))["order"]
    assert mine["refunded_amount"]["amount"] == "4000" and mine.get("commissions", []) == []
