"""The commerce core as the front-end teams use it, over HTTP only: browse with filters,
fill the cart in the live room, check out from the mini-program, pay, ship, confirm,
a partial after-sales refund with a balanced ledger — and a flash sale in a live room."""
from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import httpx

from tests.support import wait_until
from tests.support.shop import ok

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True



def cny(amount: int) -> dict:
    return {"amount": str(amount), "currency": "CNY"}


def fen(money: dict) -> int:
    return int(money.get("amount", 0))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def product_ids(resp: httpx.Response) -> list[str]:
    return [p["product_id"] for p in ok(resp).get("products", [])]


def test_a_member_shops_across_channels_and_gets_a_partial_refund(shop):
    # ---- the merchant sets up: a category tree, a product in a sub-category, 满300减30,
    # ¥10 shipping waived from ¥1000.
    women = ok(shop.as_staff("POST", "/v1/staff/categories", json={"name": "女装"}))["category"]
    dresses = ok(shop.as_staff("POST", "/v1/staff/categories", json={
        "name": "连衣裙", "parent_id": women["category_id"]}))["category"]
    assert dresses["ancestor_ids"] == [women["category_id"]]
    french = shop.new_product(stock=30, price=29900, title="法式碎花连衣裙 French Floral Dress",
                              category_id=dresses["category_id"], tags=["summer"])
    assert french["category_path"] == [women["category_id"], dresses["category_id"]]
    shop.update_order_settings(threshold_reductions=[{"threshold": cny(30000), "reduction": cny(3000)}],
                               shipping_fee=cny(1000), free_shipping_over=cny(100000))
    floral, tee = shop.product("dress-floral"), shop.product("tee-organic")

    # ---- browse, as the H5 page does before anyone logs in.
    by_keyword = product_ids(shop.call("GET", "/v1/products", params={"keyword": "连衣裙"}))
    assert sorted(by_keyword) == sorted([floral, french["product_id"]])
    assert product_ids(shop.call("GET", "/v1/products", params={"category_id": women["category_id"]})) == \
        [french["product_id"]]
    priced = ok(shop.call("GET", "/v1/products", params={
        "min_price": "15000", "max_price": "30000", "in_stock_only": "true", "sort": "PRODUCT_SORT_PRICE_ASC"}))
    prices = [fen(p["min_price"]) for p in priced["products"]]
    assert prices == sorted(prices) and all(15000 <= p <= 30000 for p in prices)
    assert {tee, floral, french["product_id"]} <= {p["product_id"] for p in priced["products"]}
    first = ok(shop.call("GET", "/v1/products", params={"keyword": "连衣裙", "page_size": "1"}))
    second = ok(shop.call("GET", "/v1/products", params={"keyword": "连衣裙", "page_size": "1",
                                                         "page_token": first["next_page_token"]}))
    assert sorted(p["product_id"] for p in first["products"] + second["products"]) == sorted(by_keyword)

    # ---- the cart is filled in the live room…
    live = shop.login("union-journey", channel="LIVE")["access_token"]
    dress_sku, tee_sku = french["skus"][0]["sku_id"], shop.sku("tee-organic")
    ok(shop.call("POST", "/v1/cart/items", channel="LIVE", token=live, json={"sku_id": dress_sku, "quantity": "1"}))
    ok(shop.call("POST", "/v1/cart/items", channel="LIVE", token=live, json={"sku_id": tee_sku, "quantity": "2"}))

    # …and checked out from the mini-program: one member, one cart.
    mini = shop.login("union-journey", channel="MINI_PROGRAM")["access_token"]
    cart = ok(shop.call("GET", "/v1/cart", channel="MINI_PROGRAM", token=mini))["cart"]
    assert {(i["sku_id"], int(i["quantity"])) for i in cart["items"]} == {(dress_sku, 1), (tee_sku, 2)}
    assert all(i["purchasable"] and i["selected"] for i in cart["items"])
    quote = ok(shop.call("POST", "/v1/checkout:quote", channel="MINI_PROGRAM", token=mini, json={}))["quote"]
    assert fen(quote["total"]) == 29900 + 2 * 15900
    assert [(s["step"], fen(s["amount"])) for s in quote["order_steps"]] == [("THRESHOLD_REDUCTION", 3000)]
    assert fen(quote["shipping_fee"]) == 1000
    assert fen(quote["payable"]) == 61700 - 3000 + 1000
    # The reduction is spread over the lines; the lines' parts add up to the whole.
    assert sum(fen(line["paid_amount"]) for line in quote["lines"]) == fen(quote["payable"]) - 1000
    quoted = {line["sku_id"]: fen(line["paid_amount"]) for line in quote["lines"]}

    placed = ok(shop.call("POST", "/v1/orders", channel="MINI_PROGRAM", token=mini, json={
        "idempotency_key": uuid.uuid4().hex, "remove_from_cart": True,
        "lines": [{"sku_id": i["sku_id"], "quantity": i["quantity"]} for i in cart["items"]]}))["order"]
    assert fen(placed["payable"]) == fen(quote["payable"])
    assert {line["sku_id"]: fen(line["paid_amount"]) for line in placed["lines"]} == quoted
    assert placed["attribution"]["channel"] == "CHANNEL_MINI_PROGRAM"
    assert ok(shop.call("GET", "/v1/cart", channel="LIVE", token=live))["cart"].get("items", []) == []
    order_id = placed["order_id"]

    paid = shop.pay(mini, order_id, channel="MINI_PROGRAM")
    assert paid["payment"]["state"] == "PAYMENT_STATE_SUCCEEDED"
    tee_stock = wait_until(lambda: (s := shop.stock(tee_sku))["reserved"] == 0 and s, message="stock committed")
    assert tee_stock == {"on_hand": 198, "reserved": 0, "available": 198}

    # ---- the staff find it and ship it; the member confirms receipt.
    found = ok(shop.as_staff("GET", "/v1/staff/orders", params={
        "state": "ORDER_STATE_PAID", "channel": "CHANNEL_MINI_PROGRAM"}))["orders"]
    assert [o["order_id"] for o in found] == [order_id]
    shipped = ok(shop.as_staff("POST", f"/v1/staff/orders/{order_id}:ship", json={
        "carrier": "SF Express", "tracking_number": "SF1234567890"}))["order"]
    assert shipped["state"] == "ORDER_STATE_SHIPPED"
    assert shipped["shipment"]["tracking_number"] == "SF1234567890" and shipped["auto_confirm_at"]
    done = ok(shop.call("POST", f"/v1/orders/{order_id}:confirmReceipt", token=mini, channel="MINI_PROGRAM",
                        json={}))["order"]
    assert done["state"] == "ORDER_STATE_COMPLETED" and done["completed_at"]

    # ---- after-sales: one of the two tees goes back; the staff approve.
    tee_line = next(line for line in placed["lines"] if line["sku_id"] == tee_sku)
    requested = ok(shop.call("POST", f"/v1/orders/{order_id}/refunds", channel="MINI_PROGRAM", token=mini, json={
        "idempotency_key": uuid.uuid4().hex, "reason": "too small",
        "lines": [{"line_id": tee_line["line_id"], "quantity": "1"}]}))["refund"]
    assert requested["state"] == "REFUND_STATE_REQUESTED" and requested["requested_by"] == "MEMBER"
    waiting = ok(shop.as_staff("GET", "/v1/staff/refunds", params={"state": "REFUND_STATE_REQUESTED"}))["refunds"]
    assert [r["refund_id"] for r in waiting] == [requested["refund_id"]]
    ok(shop.as_staff("POST", f"/v1/staff/refunds/{requested['refund_id']}:approve", json={}))

    def refunded():
        refunds = ok(shop.call("GET", f"/v1/orders/{order_id}/refunds", channel="MINI_PROGRAM", token=mini))
        return next((r for r in refunds["refunds"] if r["state"] == "REFUND_STATE_REFUNDED"), None)
    refund = wait_until(refunded, message="the refund is paid out")
    line_paid = quoted[tee_sku]
    assert fen(refund["amount"]) in (line_paid // 2, line_paid - line_paid // 2)
    assert [(r["sku_id"], int(r["quantity"]), r.get("restocked", False)) for r in refund["lines"]] == \
        [(tee_sku, 1, False)]  # shipped units do not return to stock
    staff_view = ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}"))
    assert fen(staff_view["order"]["refunded_amount"]) == fen(refund["amount"])
    refunded_line = next(line for line in staff_view["order"]["lines"] if line["sku_id"] == tee_sku)
    assert int(refunded_line["refunded_quantity"]) == 1
    assert shop.stock(tee_sku) == tee_stock

    ledger = ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}/ledger"))
    assert ledger["balanced"] is True, ledger
    by_kind = Counter()
    for entry in ledger["entries"]:
        by_kind[entry["kind"]] += fen(entry["amount"])
    assert by_kind["ORDER_PAYMENT"] == fen(placed["payable"])
    assert by_kind["REFUND"] == fen(refund["amount"])


def test_a_flash_sale_in_a_live_room_sells_exactly_its_units(shop):
    lotion = shop.sku("baby-lotion")  # ¥89.00, 50 in stock
    now = datetime.now(timezone.utc)
    # The room: a session of the shop's persona, started (an order names only a session the
    # merchant has).
    room = ok(shop.as_staff("POST", "/v1/staff/live-sessions", json={
        "persona_id": shop.data["persona_id"], "title": "直播间", "idempotency_key": uuid.uuid4().hex,
        "scheduled_at": (now + timedelta(minutes=5)).isoformat()}))["live_session"]["live_session_id"]
    ok(shop.as_staff("POST", f"/v1/staff/live-sessions/{room}:change-state", json={"state": "LIVE_SESSION_STATE_LIVE"}))
    sale = ok(shop.as_staff("POST", "/v1/staff/flash-sales", json={
        "title": "直播间秒杀 润肤霜", "sku_id": lotion, "price": cny(5900), "units": "3",
        "starts_at": rfc3339(now + timedelta(seconds=1)), "ends_at": rfc3339(now + timedelta(hours=1)),
        "live_session_id": room, "idempotency_key": uuid.uuid4().hex}))["flash_sale"]
    sale_id = sale["flash_sale_id"]
    assert sale["per_member_limit"] == 1 and int(sale["available_units"]) == 3
    # The pool's units left the SKU's sellable stock.
    assert shop.stock(lotion)["available"] == 47

    listed = ok(shop.call("GET", "/v1/flash-sales", channel="LIVE", params={"live_session_id": room}))
    assert [f["flash_sale_id"] for f in listed["flash_sales"]] == [sale_id]
    wait_until(lambda: ok(shop.call("GET", f"/v1/flash-sales/{sale_id}", channel="LIVE"))["flash_sale"]["state"]
               == "FLASH_SALE_STATE_RUNNING", message="the sale starts")

    def buy(token: str) -> httpx.Response:
        return shop.call("POST", f"/v1/flash-sales/{sale_id}:buy", channel="LIVE", token=token, json={
            "idempotency_key": uuid.uuid4().hex, "attribution": {"live_session_id": room}})

    viewers = [shop.login(f"union-viewer-{i}", channel="LIVE")["access_token"] for i in range(4)]
    first = ok(buy(viewers[0]))["order"]
    assert first["flash_sale_id"] == sale_id and fen(first["payable"]) == 5900
    assert first["attribution"] == {**first["attribution"], "channel": "CHANNEL_LIVE", "live_session_id": room}
    steps = [(s["step"], fen(s["amount"])) for line in first["lines"] for s in line["steps"]]
    assert ("ACTIVITY_PRICE", 3000) in steps
    created = datetime.fromisoformat(first["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert round((expires - created).total_seconds()) == 10 * 60
    again = buy(viewers[0])
    assert again.status_code == 400 and again.json()["error"]["reason"] == "LIMIT_REACHED", again.text

    async def rush() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=shop.url, timeout=30) as client:
            return await asyncio.gather(*(client.post(
                f"/v1/flash-sales/{sale_id}:buy", json={"idempotency_key": uuid.uuid4().hex},
                headers={"X-Api-Key": shop.key("LIVE"), "Authorization": f"Bearer {token}"}) for token in viewers[1:]))
    rushed = asyncio.run(rush())
    assert sorted(r.status_code for r in rushed) == [200, 200, 400]
    assert [r.json()["error"]["reason"] for r in rushed if r.status_code == 400] == ["SOLD_OUT"]
    pool = ok(shop.call("GET", f"/v1/flash-sales/{sale_id}", channel="LIVE"))["flash_sale"]
    assert (int(pool["available_units"]), int(pool["reserved_units"]), int(pool["sold_units"])) == (0, 3, 0)

    winners = [(viewers[0], first["order_id"])] + [
        (token, r.json()["order"]["order_id"]) for token, r in zip(viewers[1:], rushed) if r.status_code == 200]
    for token, order_id in winners:
        shop.pay(token, order_id, channel="LIVE")

    def sold_out():
        pool = ok(shop.call("GET", f"/v1/flash-sales/{sale_id}", channel="LIVE"))["flash_sale"]
        return (int(pool["available_units"]), int(pool.get("reserved_units", 0)), int(pool["sold_units"])) == (0, 0, 3)
    wait_until(sold_out, timeout=30, message="three units sold, none held")
    assert shop.audit(lotion)["consistent"] is True
