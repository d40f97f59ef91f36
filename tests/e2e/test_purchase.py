"""One purchase across every service, driven through the gateway's HTTP API as a
front-end team would, and the ways it must refuse to go wrong."""
from __future__ import annotations

import uuid

from tests.support import wait_until

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

LOTION = "baby-lotion"  # 89.00 yuan, 50 in stock, featured by the seeded article


def new_key() -> str:
    return uuid.uuid4().hex


def place(shop, token, lines, key=None, **attribution):
    body = {"idempotency_key": key or new_key(), "lines": lines}
    if attribution:
        body["attribution"] = attribution
    return shop.call("POST", "/v1/orders", token=token, json=body)


def pay(shop, token, order_id) -> dict:
    resp = shop.call("POST", f"/v1/orders/{order_id}:pay", token=token, json={"idempotency_key": new_key()})
    assert resp.status_code == 200, resp.text
    payment = resp.json()["payment"]
    done = shop.call("POST", f"/v1/sandbox/payments/{payment['payment_id']}:complete", token=token, json={})
    assert done.status_code == 200, done.text
    return done.json()


def order_state(shop, token, order_id) -> str:
    resp = shop.call("GET", f"/v1/orders/{order_id}", token=token)
    assert resp.status_code == 200, resp.text
    return resp.json()["order"]["state"]


def points(shop, token) -> dict:
    resp = shop.call("GET", "/v1/me/points", token=token)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_member_buys_through_every_service(shop):
    # Log in on H5, then from the mini-program with the same unionid: one member.
    h5 = shop.login("union-alice", channel="H5")
    mini = shop.login("union-alice", channel="MINI_PROGRAM")
    assert h5["member"]["member_id"] == mini["member"]["member_id"]
    assert h5["created"] is True and mini.get("created", False) is False
    token = h5["access_token"]

    # Browse: list, then open one product.
    listed = shop.call("GET", "/v1/products", token=None)
    assert listed.status_code == 200, listed.text
    ids = {p["product_id"] for p in listed.json()["products"]}
    assert shop.product(LOTION) in ids
    detail = shop.call("GET", f"/v1/products/{shop.product(LOTION)}")
    assert detail.status_code == 200
    assert detail.json()["product"]["skus"][0]["list_price"]["amount"] == "8900"

    # Place an order from the persona's article, with an idempotency key.
    sku = shop.sku(LOTION)
    before = shop.stock(sku)
    placed = place(shop, token, [{"sku_id": sku, "quantity": 2}],
                   persona_id=shop.data["persona_id"], content_id=shop.data["content_id"])
    assert placed.status_code == 200, placed.text
    order = placed.json()["order"]
    assert order["state"] == "ORDER_STATE_PENDING_PAYMENT"
    assert order["payable"]["amount"] == "17800"
    assert order["attribution"]["channel"] == "CHANNEL_H5"
    assert shop.stock(sku) == {**before, "reserved": before["reserved"] + 2, "available": before["available"] - 2}

    # Pay through the sandbox provider; its signed callback marks the order PAID.
    paid = pay(shop, token, order["order_id"])
    assert paid["payment"]["state"] == "PAYMENT_STATE_SUCCEEDED"
    assert order_state(shop, token, order["order_id"]) == "ORDER_STATE_PAID"

    # order.paid reaches catalog (reservation committed), member (points), content (funnel).
    wait_until(lambda: shop.stock(sku) == {"on_hand": before["on_hand"] - 2, "reserved": before["reserved"],
                                           "available": before["available"] - 2},
               message="reservation committed")
    balance = wait_until(lambda: (p := points(shop, token)) and int(p.get("balance", 0)) == 178 and p,
                         message="points earned")
    assert len(balance["entries"]) == 1
    me = shop.call("GET", "/v1/me", token=token).json()["member"]
    assert int(me["growth_value"]) == 178

    staff = shop.staff_token()

    def funnel():
        resp = shop.call("GET", f"/v1/staff/personas/{shop.data['persona_id']}/funnel", channel=None, token=staff)
        assert resp.status_code == 200, resp.text
        return resp.json()["funnel"]

    persona_funnel = wait_until(lambda: (f := funnel()) and int(f.get("paid_orders", 0)) == 1 and f,
                                message="persona funnel counts the paid order")
    assert int(persona_funnel["orders"]) == 1
    assert persona_funnel["gmv"]["amount"] == "17800"
    content_funnel = shop.call("GET", f"/v1/staff/contents/{shop.data['content_id']}/funnel",
                               channel=None, token=staff).json()["funnel"]
    assert int(content_funnel["paid_orders"]) == 1

    listed_orders = shop.call("GET", "/v1/orders", token=token).json()["orders"]
    assert [o["order_id"] for o in listed_orders] == [order["order_id"]]


def test_malformed_input_is_refused_with_field_violations_and_writes_nothing(shop):
    token = shop.login("union-bad-input")["access_token"]
    sku = shop.sku(LOTION)
    before = shop.stock(sku)
    cases = [
        ([{"sku_id": sku, "quantity": 0}], "lines[0].quantity"),
        ([{"sku_id": sku, "quantity": 100000}], "lines[0].quantity"),
        ([{"sku_id": "not-an-id", "quantity": 1}], "lines[0].sku_id"),
        ([], "lines"),
    ]
    for lines, field in cases:
        resp = place(shop, token, lines)
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert error["code"] == "INVALID_ARGUMENT"
        assert field in {v["field"] for v in error["field_violations"]}, error
        assert error["request_id"]
    missing_key = shop.call("POST", "/v1/orders", token=token, json={"lines": [{"sku_id": sku, "quantity": 1}]})
    assert missing_key.status_code == 400
    assert "idempotency_key" in {v["field"] for v in missing_key.json()["error"]["field_violations"]}
    wrong_type = shop.call("POST", "/v1/orders", token=token, json={"idempotency_key": "k", "lines": "two"})
    assert wrong_type.status_code == 400
    not_json = shop.call("POST", "/v1/orders", token=token, content=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400
    assert shop.stock(sku) == before
    assert shop.call("GET", "/v1/orders", token=token).json().get("orders", []) == []


def test_unknown_product_is_404_and_short_stock_reserves_nothing(shop):
    token = shop.login("union-stock")["access_token"]
    missing = shop.call("GET", "/v1/products/prd_01JAAAAAAAAAAAAAAAAAAAAAAA")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    unknown_sku = place(shop, token, [{"sku_id": "sku_01JAAAAAAAAAAAAAAAAAAAAAAA", "quantity": 1}])
    assert unknown_sku.status_code == 404, unknown_sku.text

    lotion, tee = shop.sku(LOTION), shop.sku("tee-organic")
    before = (shop.stock(lotion), shop.stock(tee))
    # The first line fits, the second does not: neither may stay reserved.
    short = place(shop, token, [{"sku_id": tee, "quantity": 1}, {"sku_id": lotion, "quantity": 51}])
    assert short.status_code == 400, short.text
    error = short.json()["error"]
    assert error["reason"] == "OUT_OF_STOCK"
    assert "lines[1].quantity" in {v["field"] for v in error["field_violations"]}
    assert (shop.stock(lotion), shop.stock(tee)) == before


def test_the_same_idempotency_key_gives_the_same_order_and_one_reservation(shop):
    token = shop.login("union-idem")["access_token"]
    sku = shop.sku("tee-organic")
    before = shop.stock(sku)
    key = new_key()
    first = place(shop, token, [{"sku_id": sku, "quantity": 3}], key=key)
    second = place(shop, token, [{"sku_id": sku, "quantity": 3}], key=key)
    assert first.status_code == second.status_code == 200
    assert first.json()["order"]["order_id"] == second.json()["order"]["order_id"]
    assert shop.stock(sku)["reserved"] == before["reserved"] + 3
    assert len(shop.call("GET", "/v1/orders", token=token).json()["orders"]) == 1


def test_a_repeated_callback_changes_nothing_and_a_forged_one_is_rejected(shop):
    token = shop.login("union-callback")["access_token"]
    order = place(shop, token, [{"sku_id": shop.sku(LOTION), "quantity": 1}]).json()["order"]
    resp = shop.call("POST", f"/v1/orders/{order['order_id']}:pay", token=token, json={"idempotency_key": new_key()})
    payment = resp.json()["payment"]

    # A forged notification: same fields, wrong signature.
    done = shop.call("POST", f"/v1/sandbox/payments/{payment['payment_id']}:complete", token=token, json={})
    callback = done.json()["callback"]
    forged = dict(callback, amount="1", signature="00" * 32)
    rejected = shop.call("POST", "/v1/payments/sandbox/callback", channel=None, json=forged)
    assert rejected.status_code == 401, rejected.text

    # The genuine one again: accepted, applied nothing.
    again = shop.call("POST", "/v1/payments/sandbox/callback", channel=None, json=callback)
    assert again.status_code == 200, again.text
    assert again.json().get("applied", False) is False
    assert order_state(shop, token, order["order_id"]) == "ORDER_STATE_PAID"
    earned = wait_until(lambda: (p := points(shop, token)) and p.get("entries") and p, message="points")
    assert len(earned["entries"]) == 1 and int(earned["balance"]) == 89


def test_channel_keys_and_merchants_are_enforced(shop, other_shop):
    no_key = shop.call("GET", "/v1/products", channel=None)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["code"] == "UNAUTHENTICATED"
    wrong_key = shop.call("GET", "/v1/products", channel=None, headers={"X-Api-Key": "nope"})
    assert wrong_key.status_code == 401
    no_token = shop.call("GET", "/v1/orders")
    assert no_token.status_code == 401

    token = shop.login("union-tenant")["access_token"]
    order = place(shop, token, [{"sku_id": shop.sku(LOTION), "quantity": 1}]).json()["order"]
    # A member of another merchant, with that merchant's key, cannot see it…
    stranger = other_shop.login("union-tenant")["access_token"]
    assert other_shop.call("GET", f"/v1/orders/{order['order_id']}", token=stranger).status_code == 404
    # …nor use their token with this merchant's key, nor open this merchant's product.
    assert shop.call("GET", f"/v1/orders/{order['order_id']}", token=stranger).status_code == 401
    assert other_shop.call("GET", f"/v1/products/{shop.product(LOTION)}").status_code == 404
    # Another member of the same merchant cannot see it either.
    neighbour = shop.login("union-neighbour")["access_token"]
    assert shop.call("GET", f"/v1/orders/{order['order_id']}", token=neighbour).status_code == 404


def test_points_arrive_exactly_once_when_the_member_service_was_down(stack, shop):
    token = shop.login("union-outage")["access_token"]
    first = place(shop, token, [{"sku_id": shop.sku(LOTION), "quantity": 1}]).json()["order"]
    # Key resolution is cached by the gateway, so the member can still pay while the
    # member service is down.
    stack.stop("member")
    try:
        pay(shop, token, first["order_id"])
        assert order_state(shop, token, first["order_id"]) == "ORDER_STATE_PAID"
    finally:
        stack.start_service("member")
        stack.wait_services_serving(["member"])
        # The gateway reaches it again: its channel's reconnect backoff grew while the service was away.
        stack.wait_ready(timeout=150)
    earned = wait_until(lambda: (p := points(shop, token)) and int(p.get("balance", 0)) == 89 and p,
                        timeout=30, message="points after the member service came back")
    assert len(earned["entries"]) == 1

    # A second purchase after the restart: its points land after the first's redelivery,
    # so seeing exactly two entries proves the first was not applied twice.
    second = place(shop, token, [{"sku_id": shop.sku(LOTION), "quantity": 1}]).json()["order"]
    pay(shop, token, second["order_id"])
    both = wait_until(lambda: (p := points(shop, token)) and len(p.get("entries", [])) == 2 and p,
                      message="second order's points")
    assert int(both["balance"]) == 178
    assert sorted(e["source_id"] for e in both["entries"]) == sorted([first["order_id"], second["order_id"]])
