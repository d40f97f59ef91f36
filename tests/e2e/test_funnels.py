"""Funnels and repeat purchase over HTTP: orders placed, paid and refunded with
attribution reach the persona's, content item's, channel's and share code's funnel of
the day, and the month's cohort report."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.support import wait_until
from tests.support.shop import ok, refused, staff_with


def _order(shop, token: str, sku: str, **attribution) -> dict:
    return ok(shop.call("POST", "/v1/orders", token=token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": "1"}],
        "attribution": attribution}))["order"]


def test_orders_paid_and_refunded_make_the_days_funnel_and_the_cohort_report(shop):
    shanghai = ZoneInfo("Asia/Shanghai")
    today = datetime.now(shanghai)
    # A range around today, so a run across the merchant's midnight still sees every count.
    first_day, last_day = (today - timedelta(days=1)).date().isoformat(), (today + timedelta(days=1)).date().isoformat()
    month = today.strftime("%Y-%m")
    sku = shop.new_product(stock=20, price=5000)["skus"][0]["sku_id"]
    persona, content = shop.data["persona_id"], shop.data["content_id"]
    alice, bob = (shop.login(f"union-{uuid.uuid4().hex[:8]}")["access_token"] for _ in range(2))
    # A code the merchant issued: one it never issued is dropped from the order.
    code = ok(shop.as_staff("POST", "/v1/staff/share-codes", json={
        "target_kind": "SHARE_TARGET_KIND_CONTENT", "target_id": content}))["share_code"]["code"]
    attribution = {"persona_id": persona, "content_id": content, "share_code": code}
    paid = []
    for token in (alice, alice, bob):
        paid.append(_order(shop, token, sku, **attribution))
        shop.pay(token, paid[-1]["order_id"])
    _order(shop, bob, sku, **attribution)  # placed, never paid
    # Bob's paid order comes back in full: it leaves the paid orders and GMV.
    paid_one = paid[-1]
    wait_until(lambda: ok(shop.call("GET", f"/v1/orders/{paid_one['order_id']}", token=bob))["order"]["state"]
               == "ORDER_STATE_PAID", message="bob's order paid")
    refund = ok(shop.call("POST", f"/v1/orders/{paid_one['order_id']}/refunds", token=bob, json={
        "idempotency_key": uuid.uuid4().hex, "reason": "changed my mind",
        "lines": [{"line_id": paid_one["lines"][0]["line_id"], "quantity": "1"}]}))["refund"]
    ok(shop.as_staff("POST", f"/v1/staff/refunds/{refund['refund_id']}:approve", json={}))

    def report(dimension: str, ref_id: str) -> dict:
        return ok(shop.as_staff("GET", "/v1/staff/funnel-report", params={
            "dimension": dimension, "ref_id": ref_id, "from_day": first_day, "to_day": last_day}))

    def settled(dimension: str, ref_id: str):
        body = report(dimension, ref_id)
        total = body["total"]
        return body if int(total.get("refunds", 0)) == 1 and int(total.get("orders", 0)) == 4 else None

    body = wait_until(lambda: settled("FUNNEL_DIMENSION_PERSONA", persona), message="the refund reaches the funnel")
    assert [row["day"] for row in body["days"]] == [first_day, today.date().isoformat(), last_day]
    total = body["total"]
    assert (int(total["orders"]), int(total["paid_orders"]), total["gmv"]["amount"], total["refunded"]["amount"]) \
        == (4, 2, "10000", "5000")
    assert body["time_zone"] == "Asia/Shanghai"
    for dimension, ref in (("FUNNEL_DIMENSION_CONTENT", content), ("FUNNEL_DIMENSION_SHARE_CODE", code),
                           ("FUNNEL_DIMENSION_CHANNEL", "H5")):
        assert wait_until(lambda d=dimension, r=ref: settled(d, r), message=f"{dimension} funnel")["total"] == total

    cohorts = ok(shop.as_staff("GET", "/v1/staff/repeat-purchase-report", params={
        "from_month": month, "to_month": datetime.now(shanghai).strftime("%Y-%m"),
        "group_by": "COHORT_GROUPING_CHANNEL"}))
    [h5] = cohorts["groups"]
    assert (h5["key"], h5["members"], h5["repeat_members"], h5["repeat_rate_bp"]) == ("H5", "2", "1", "10000")
    assert h5["lifetime_value"]["amount"] == "5000"  # alice's 100 yuan and bob's nothing, over two members
    assert h5["cohorts"][0]["month"] == month and cohorts["through_month"] >= month

    # Only OPERATOR and OWNER read them; bad input is refused field by field.
    guide = staff_with(shop, "GUIDE")
    refused(shop.call("GET", "/v1/staff/funnel-report", channel=None, token=guide, params={
        "dimension": "FUNNEL_DIMENSION_PERSONA", "ref_id": persona, "from_day": first_day, "to_day": last_day}), 403)
    refused(shop.as_staff("GET", "/v1/staff/funnel-report", params={
        "dimension": "FUNNEL_DIMENSION_PERSONA", "ref_id": "cnt_x", "from_day": first_day, "to_day": "2020-01-01"}), 400,
        fields={"ref_id", "to_day"})
