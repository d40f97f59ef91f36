"""Hand-made hostile input the schema fuzzer is unlikely to draw: amounts at and beyond the
bound that keeps every total inside int64, too many order lines, and ids that belong to
another merchant. Each is refused before anything is held, and changes nothing."""
from __future__ import annotations

import uuid

from tests.support.shop import Shop

INT64_MAX = 2**63 - 1
MAX_AMOUNT = 10_000_000_000


def violations(resp) -> dict[str, str]:
    return {v["field"]: v["description"] for v in resp.json()["error"].get("field_violations", [])}


def place(shop: Shop, token: str, lines: list[dict], **extra):
    return shop.call("POST", "/v1/orders", token=token,
                     json={"idempotency_key": uuid.uuid4().hex, "lines": lines, **extra})


def test_an_amount_beyond_the_bound_is_refused_and_the_largest_one_prices_cleanly(shop):
    code = "big-" + uuid.uuid4().hex[:8]
    resp = shop.as_staff("POST", "/v1/staff/products", json={
        "code": code, "title": "Too dear", "status": "PRODUCT_STATUS_ON_SHELF",
        "skus": [{"code": code + "-1", "list_price": {"amount": str(INT64_MAX)}, "initial_stock": "5"}]})
    assert resp.status_code == 400, resp.text
    assert "skus[0].list_price.amount" in violations(resp)
    listed = shop.call("GET", "/v1/products", params={"keyword": "Too dear"}).json()
    assert listed["products"] == []

    # At the bound, the most units a line may carry still price inside int64.
    sku = shop.new_sku(stock=999, price=MAX_AMOUNT)
    token = shop.login("big-spender")["access_token"]
    quote = shop.call("POST", "/v1/checkout:quote", token=token, json={"lines": [{"sku_id": sku, "quantity": 999}]})
    assert quote.status_code == 200, quote.text
    assert int(quote.json()["quote"]["total"]["amount"]) == 999 * MAX_AMOUNT


def test_a_shipping_fee_beyond_the_bound_is_refused_and_quotes_keep_working(shop):
    current = shop.as_staff("GET", "/v1/staff/order-settings").json()["settings"]
    resp = shop.as_staff("PUT", "/v1/staff/order-settings", json={
        "settings": {**current, "shipping_fee": {"amount": str(INT64_MAX), "currency": "CNY"},
                     "free_shipping_over": {"amount": str(MAX_AMOUNT + 1)}},
        "expected_version": current["version"]})
    assert resp.status_code == 400, resp.text
    assert {"settings.shipping_fee.amount", "settings.free_shipping_over.amount"} <= set(violations(resp))
    sku = shop.new_sku(stock=3)
    token = shop.login("quote-after-bad-fee")["access_token"]
    quote = shop.call("POST", "/v1/checkout:quote", token=token, json={"lines": [{"sku_id": sku, "quantity": 2}]})
    assert quote.status_code == 200, quote.text


def test_too_many_lines_get_one_violation_and_hold_nothing(shop):
    sku = shop.new_sku(stock=10)
    token = shop.login("many-lines")["access_token"]
    lines = [{"sku_id": sku, "quantity": 1}] + [{"sku_id": f"sku_bad{i}", "quantity": 0} for i in range(150)]
    resp = place(shop, token, lines)
    assert resp.status_code == 400, resp.text
    assert violations(resp) == {"lines": "at most 50"}
    assert shop.stock(sku)["available"] == 10


def test_an_order_names_only_its_own_merchants_persona_and_content(shop, other_shop):
    sku = shop.new_sku(stock=5)
    token = shop.login("attributed")["access_token"]
    line = [{"sku_id": sku, "quantity": 1}]
    theirs = place(shop, token, line, attribution={"persona_id": other_shop.data["persona_id"],
                                                   "content_id": other_shop.data["content_id"]})
    assert theirs.status_code == 404, theirs.text
    assert set(violations(theirs)) == {"attribution.persona_id", "attribution.content_id"}
    unknown = place(shop, token, line, attribution={"content_id": "cnt_01JAAAAAAAAAAAAAAAAAAAAAAA"})
    assert unknown.status_code == 404 and set(violations(unknown)) == {"attribution.content_id"}
    # Refused before the stock was touched.
    assert shop.stock(sku)["available"] == 5
    assert shop.call("GET", "/v1/orders", token=token).json().get("orders", []) == []

    ours = place(shop, token, line, attribution={"persona_id": shop.data["persona_id"],
                                                 "content_id": shop.data["content_id"]})
    assert ours.status_code == 200, ours.text
    assert ours.json()["order"]["attribution"]["persona_id"] == shop.data["persona_id"]


def test_content_links_only_its_own_merchants_products(shop, other_shop):
    body = {"code": "links-" + uuid.uuid4().hex[:8], "persona_id": shop.data["persona_id"],
            "type": "CONTENT_TYPE_ARTICLE", "title": "Picks",
            "product_ids": [shop.product(next(iter(shop.data["products"]))),
                            other_shop.product(next(iter(other_shop.data["products"])))]}
    resp = shop.as_staff("POST", "/v1/staff/contents", json=body)
    assert resp.status_code == 404, resp.text
    assert set(violations(resp)) == {"product_ids[1]"}
    resp = shop.as_staff("POST", "/v1/staff/contents", json={**body, "product_ids": body["product_ids"][:1]})
    assert resp.status_code == 200, resp.text
