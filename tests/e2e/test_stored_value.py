"""Stored value through the gateway, as the member's app and the staff desk use it: buying a
recharge package through the sandbox provider, paying orders with balance alone and with
the provider for the rest, cancelling and refunding such orders, finance refunding an
unspent recharge, concurrent balance payments, and the new routes refusing bad input,
other merchants and the wrong roles."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from siyu_kit.ids import new_id
from tests.support import wait_until
from tests.support.shop import Shop, ok, refused, staff_with
from tests.support.stored_value import (amount, balance, complete, key, new_package,
                                        order, pay, place, place_recharge)


def member(shop: Shop, name: str) -> tuple[str, str]:
    done = shop.login(f"sv-{name}-{key()[:8]}")
    return done["access_token"], done["member"]["member_id"]


def recharged(shop: Shop, token: str, price: int = 10000, bonus: int = 2000) -> dict:
    """The member buys a package through the sandbox provider; returns the paid order once
    the balance shows the credit."""
    before = balance(shop, token)
    bought = place_recharge(shop, token, new_package(shop, price, bonus))
    complete(shop, token, pay(shop, token, bought["order_id"], use_balance=False)["payment_id"])
    wait_until(lambda: balance(shop, token)["available"] == before["available"] + price + bonus,
               message="the recharge credited")
    return order(shop, token, bought["order_id"])


def ledger_of(shop: Shop, order_id: str) -> dict:
    return ok(shop.as_staff("GET", f"/v1/staff/orders/{order_id}/ledger"))


def test_buying_a_package_credits_principal_and_bonus_and_the_order_stays_paid(shop):
    token, member_id = member(shop, "buy")
    paid = recharged(shop, token)
    assert paid["state"] == "ORDER_STATE_PAID" and paid["kind"] == "ORDER_KIND_RECHARGE"
    assert amount(paid["recharge"]["principal"]) == 10000 and amount(paid["recharge"]["bonus"]) == 2000
    assert balance(shop, token) == {"principal": 10000, "bonus": 2000, "available": 12000, "held": 0}
    listed = ok(shop.as_staff("GET", f"/v1/staff/orders?member_id={member_id}"))["orders"]
    assert [(o["order_id"], o["kind"]) for o in listed] == [(paid["order_id"], "ORDER_KIND_RECHARGE")]
    refused(shop.as_staff("POST", f"/v1/staff/orders/{paid['order_id']}:ship",
                          json={"carrier": "SF", "tracking_number": "SF1"}), 400, "ORDER_NOT_SHIPPABLE")
    refused(shop.call("POST", f"/v1/orders/{paid['order_id']}:pay", token=token,
                      json={"idempotency_key": key(), "use_balance": True}), 400)


def test_balance_alone_pays_an_order_at_once(shop):
    token, _ = member(shop, "alone")
    recharged(shop, token)
    bought = place(shop, token, shop.new_sku(stock=5, price=8900))
    payment = pay(shop, token, bought["order_id"], use_balance=True)
    assert payment["method"] == "PAYMENT_METHOD_BALANCE" and amount(payment.get("amount")) == 0
    paid = order(shop, token, bought["order_id"])
    assert paid["state"] == "ORDER_STATE_PAID" and amount(paid["tender"]["balance"]) == 8900
    wait_until(lambda: balance(shop, token)["available"] == 12000 - 8900 and balance(shop, token)["held"] == 0,
               message="the balance spent")
    ledger = ledger_of(shop, bought["order_id"])
    assert ledger["balanced"] is True and [e["kind"] for e in ledger["entries"]] == ["BALANCE_PAYMENT"]


def test_balance_first_and_the_provider_for_the_rest(shop):
    token, _ = member(shop, "split")
    recharged(shop, token)
    bought = place(shop, token, shop.new_sku(stock=5, price=20000))
    payment = pay(shop, token, bought["order_id"], use_balance=True)
    assert amount(payment["amount"]) == 8000 and amount(payment["balance"]) == 12000
    assert balance(shop, token)["held"] == 12000
    complete(shop, token, payment["payment_id"])
    paid = order(shop, token, bought["order_id"])
    assert paid["state"] == "ORDER_STATE_PAID"
    assert (amount(paid["tender"]["balance"]), amount(paid["tender"]["provider"])) == (12000, 8000)
    wait_until(lambda: balance(shop, token) == {"principal": 0, "bonus": 0, "available": 0, "held": 0},
               message="the hold spent")
    assert ledger_of(shop, bought["order_id"])["balanced"] is True


def test_cancelling_an_order_paid_partly_with_balance_gives_the_balance_back(shop):
    token, _ = member(shop, "cancel")
    recharged(shop, token)
    bought = place(shop, token, shop.new_sku(stock=5, price=20000))
    pay(shop, token, bought["order_id"], use_balance=True)
    assert balance(shop, token)["available"] == 0
    ok(shop.call("POST", f"/v1/orders/{bought['order_id']}:cancel", token=token, json={}))
    wait_until(lambda: balance(shop, token) == {"principal": 10000, "bonus": 2000, "available": 12000, "held": 0},
               message="the hold given back")


def test_a_full_refund_returns_each_part_exactly_where_it_came_from(shop):
    token, _ = member(shop, "refund")
    recharged(shop, token)
    bought = place(shop, token, shop.new_sku(stock=5, price=10000), quantity=3)  # 300.00: 120 + 180
    complete(shop, token, pay(shop, token, bought["order_id"], use_balance=True)["payment_id"])
    line = bought["lines"][0]["line_id"]
    for n in range(3):  # one unit at a time: the parts are exact in the end
        ok(shop.as_staff("POST", f"/v1/staff/orders/{bought['order_id']}/refunds", json={
            "idempotency_key": f"r{n}", "lines": [{"line_id": line, "quantity": "1"}]}))
    done = order(shop, token, bought["order_id"])
    tender = done["tender"]
    assert amount(tender["balance_refunded"]) == 12000 and amount(tender["provider_refunded"]) == 18000
    wait_until(lambda: balance(shop, token)["available"] == 12000, message="the balance part refunded")
    assert ledger_of(shop, bought["order_id"])["balanced"] is True


def test_finance_refunds_an_unspent_recharge_principal_through_the_provider_bonus_removed(shop):
    token, member_id = member(shop, "finance")
    paid = recharged(shop, token)
    recharges = ok(shop.as_staff("GET", f"/v1/staff/members/{member_id}/balance"))["recharges"]
    finance = staff_with(shop, "FINANCE")
    resp = shop.call("POST", f"/v1/staff/recharges/{recharges[0]['recharge_id']}:refund", channel=None,
                     token=finance, json={"reason": "customer asked", "idempotency_key": key()})
    ok(resp)
    wait_until(lambda: amount(order(shop, token, paid["order_id"]).get("refunded_amount")) == 10000,
               message="the recharge order refunded")
    assert balance(shop, token) == {"principal": 0, "bonus": 0, "available": 0, "held": 0}
    ledger = ledger_of(shop, paid["order_id"])
    assert ledger["balanced"] is True and "REFUND" in [e["kind"] for e in ledger["entries"]]


def test_concurrent_balance_payments_never_take_the_balance_below_zero(shop):
    token, _ = member(shop, "race")
    recharged(shop, token)
    sku = shop.new_sku(stock=20, price=5000)
    orders = [place(shop, token, sku)["order_id"] for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        payments = list(pool.map(lambda oid: pay(shop, token, oid, use_balance=True), orders))
    held = sum(amount(p.get("balance")) for p in payments)
    assert held == 12000  # 2 orders wholly, then what was left, then nothing
    assert sorted(amount(p.get("amount")) for p in payments) == sorted(5000 - amount(p.get("balance"))
                                                                       for p in payments)
    wait_until(lambda: balance(shop, token)["available"] == 0, message="the balance spent or held")
    assert balance(shop, token)["available"] >= 0


# ---- refusals: these need nothing of the member service's stored value ------------------


def test_bad_input_is_400_with_field_violations_and_writes_nothing(shop):
    token, _ = member(shop, "bad")
    refused(shop.call("POST", "/v1/me/recharge-orders", token=token, json={"package_id": "rcp_x"}), 400,
            fields={"package_id", "idempotency_key"})
    refused(shop.call("POST", "/v1/orders/ord_x:pay", token=token,
                      json={"idempotency_key": key(), "use_balance": True}), 400, fields={"order_id"})
    assert ok(shop.call("GET", "/v1/orders", token=token)).get("orders", []) == []


def test_another_merchants_order_is_not_found_and_staff_cannot_place_a_recharge(shop, other_shop):
    token, _ = member(shop, "mine")
    bought = place(shop, token, shop.new_sku(stock=5, price=1000))
    other_token, _ = member(other_shop, "other")
    refused(other_shop.call("POST", f"/v1/orders/{bought['order_id']}:pay", token=other_token,
                            json={"idempotency_key": key(), "use_balance": True}), 404)
    resp = shop.call("POST", "/v1/me/recharge-orders", channel=None, token=staff_with(shop, "FINANCE"),
                     json={"package_id": new_id("rcp"), "idempotency_key": key()})
    assert resp.status_code in (401, 403), resp.text
    assert order(shop, token, bought["order_id"])["state"] == "ORDER_STATE_PENDING_PAYMENT"


def test_another_merchants_package_is_not_found(shop, other_shop):
    package_id = new_package(shop)
    other_token, _ = member(other_shop, "pkg")
    refused(other_shop.call("POST", "/v1/me/recharge-orders", token=other_token,
                            json={"package_id": package_id, "idempotency_key": key()}), 404,
            "RECHARGE_PACKAGE_NOT_OFFERED")
