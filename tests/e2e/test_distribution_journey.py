"""Distribution end to end over HTTP, every service really running: share codes opened by
signed-in members bind them (content → member), an order placed with a distributor's
share code is credited to two levels (member → order), its commissions go PENDING at
payment, FROZEN at completion and SETTLED when the order's after-sales window closes (the
order service's settlement job → member), a distributor withdraws and FINANCE's approval
pays it through the provider; refunds void commission at every stage and at both levels,
and a refund after the money was withdrawn becomes the distributor's debt, paid by the next
commission. The binding rules (self, cycle, first wins) are checked on the way."""
from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.support import wait_until
from tests.support.shop import Shop, ok, refused, staff_with

PRICE = 10_000  # fen; level 1 earns 10% (1,000), level 2 5% (500) of what was paid


def _amount(money: dict | None) -> int:
    return int((money or {}).get("amount", "0"))


def _member(shop: Shop, name: str) -> tuple[str, str]:
    body = ok(shop.call("POST", "/v1/auth/login", channel="MINI_PROGRAM", json={
        "code": f"sandbox:journey-{uuid.uuid4().hex[:12]}", "nickname": f"{name}同学"}))
    return body["access_token"], body["member"]["member_id"]


def _call(shop: Shop, method: str, path: str, token: str, **kwargs):
    return shop.call(method, path, channel="MINI_PROGRAM", token=token, **kwargs)


def _share_code(shop: Shop, token: str, product_id: str) -> str:
    return ok(_call(shop, "POST", "/v1/share-codes", token, json={
        "target_kind": "SHARE_TARGET_KIND_PRODUCT", "target_id": product_id}))["share_code"]["code"]


def _open(shop: Shop, token: str, code: str) -> None:
    ok(_call(shop, "POST", f"/v1/share-codes/{code}:open", token, json={}))


def _bound_customers(shop: Shop, token: str) -> int:
    return int(ok(_call(shop, "GET", "/v1/me/distributor", token)).get("bound_customers", "0"))


def _distributor(shop: Shop, token: str, member_id: str) -> dict:
    ok(_call(shop, "POST", "/v1/me/distributor:apply", token, json={"reason": "分享好物"}))
    return ok(shop.as_staff("POST", f"/v1/staff/distributors/{member_id}:approve", json={}))["distributor"]


def _summary(shop: Shop, token: str) -> dict:
    return ok(_call(shop, "GET", "/v1/me/commissions/summary", token))["summary"]


def _balance(shop: Shop, token: str) -> dict[str, int]:
    balance = _summary(shop, token).get("balance", {})
    return {k: _amount(balance.get(k)) for k in ("available", "withdrawing", "withdrawn", "debt")}


def _records(shop: Shop, token: str, order_id: str) -> list[tuple[str, int, int]]:
    """(state, amount, voided) of the caller's commissions on the order."""
    records = ok(_call(shop, "GET", "/v1/me/commissions?page_size=100", token))["records"]
    return sorted((r["state"].removeprefix("COMMISSION_STATE_"), _amount(r.get("amount")), _amount(r.get("voided")))
                  for r in records if r["order_id"] == order_id)


def _order(shop: Shop, token: str, sku: str, units: int, code: str) -> dict:
    order = ok(_call(shop, "POST", "/v1/orders", token, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"sku_id": sku, "quantity": str(units)}],
        "attribution": {"share_code": code}}))["order"]
    shop.pay(token, order["order_id"], channel="MINI_PROGRAM")
    return order


def _complete(shop: Shop, token: str, order_id: str) -> None:
    ok(shop.as_staff("POST", f"/v1/staff/orders/{order_id}:ship", json={"carrier": "SF", "tracking_number": "SF9"}))
    done = ok(_call(shop, "POST", f"/v1/orders/{order_id}:confirmReceipt", token, json={}))["order"]
    assert done["state"] == "ORDER_STATE_COMPLETED"


def _refund(shop: Shop, staff: str, order: dict, units: int, after_window: bool = False) -> dict:
    return ok(shop.call("POST", f"/v1/staff/orders/{order['order_id']}/refunds", channel=None, token=staff, json={
        "idempotency_key": uuid.uuid4().hex, "lines": [{"line_id": order["lines"][0]["line_id"],
                                                        "quantity": str(units)}],
        "reason": "质量问题", "after_window": after_window}))["refund"]


def test_share_code_to_withdrawal_with_refunds_at_every_stage_and_a_clawback_into_debt(shop: Shop):
    current = ok(shop.as_staff("GET", "/v1/staff/distribution/settings"))["settings"]
    ok(shop.as_staff("PUT", "/v1/staff/distribution/settings", json={"settings": {
        "enabled": True, "levels": 2, "level1_rate_bp": 1000, "level2_rate_bp": 500, "binding_days": 30,
        "binding_rule": "DISTRIBUTOR_BINDING_RULE_FIRST_WINS"}, "expected_version": current.get("version", "0")}))
    shop.update_order_settings(after_sales_days=7)
    product = shop.new_product(50, price=PRICE)
    sku, product_id = product["skus"][0]["sku_id"], product["product_id"]
    finance = staff_with(shop, "FINANCE")

    # The upline distributor; the distributor, bound to the upline through its share code
    # before becoming one; the buyer, bound to the distributor through theirs.
    up_token, up_id = _member(shop, "上级")
    _distributor(shop, up_token, up_id)
    d_token, d_id = _member(shop, "分销")
    _open(shop, d_token, _share_code(shop, up_token, product_id))
    wait_until(lambda: _bound_customers(shop, up_token) == 1, message="the distributor bound to the upline")
    assert _distributor(shop, d_token, d_id)["upline_id"] == up_id
    code = _share_code(shop, d_token, product_id)
    b_token, _ = _member(shop, "买家")
    _open(shop, b_token, code)
    wait_until(lambda: _bound_customers(shop, d_token) == 1, message="the buyer bound to the distributor")

    # Binding rules: nobody binds to themselves, an upline never binds below itself (a
    # cycle), and the first binding wins over another distributor's code.
    _open(shop, d_token, code)
    _open(shop, up_token, code)
    other_token, other_id = _member(shop, "别家")
    _distributor(shop, other_token, other_id)
    _open(shop, b_token, _share_code(shop, other_token, product_id))

    # O1: paid → PENDING at both levels; completed → FROZEN.
    o1 = _order(shop, b_token, sku, 1, code)
    staff_view = ok(shop.as_staff("GET", f"/v1/staff/orders/{o1['order_id']}"))["order"]
    assert staff_view["referral"]["distributor_id"] == d_id
    assert staff_view["referral"]["upline_distributor_id"] == up_id
    wait_until(lambda: _records(shop, d_token, o1["order_id"]) == [("PENDING", 1_000, 0)], message="O1 pending")
    wait_until(lambda: _records(shop, up_token, o1["order_id"]) == [("PENDING", 500, 0)], message="O1 pending L2")
    _complete(shop, b_token, o1["order_id"])
    wait_until(lambda: _records(shop, d_token, o1["order_id"]) == [("FROZEN", 1_000, 0)], message="O1 frozen")

    # O2: two units, one refunded while PENDING (before shipping).
    o2 = _order(shop, b_token, sku, 2, code)
    _refund(shop, finance, o2, 1)
    wait_until(lambda: _records(shop, d_token, o2["order_id"]) == [("PENDING", 2_000, 1_000)], message="O2 void")
    wait_until(lambda: _records(shop, up_token, o2["order_id"]) == [("PENDING", 1_000, 500)], message="O2 void L2")
    # O3: two units, completed, one refunded while FROZEN (inside the after-sales window).
    o3 = _order(shop, b_token, sku, 2, code)
    _complete(shop, b_token, o3["order_id"])
    _refund(shop, finance, o3, 1)
    wait_until(lambda: _records(shop, d_token, o3["order_id"]) == [("FROZEN", 2_000, 1_000)], message="O3 void")
    _complete(shop, b_token, o2["order_id"])

    # The window closes: the settlement job settles O1, O2, O3 and their commissions become
    # withdrawable, net of what refunds voided.
    shop.update_order_settings(after_sales_days=0)
    wait_until(lambda: _balance(shop, d_token)["available"] == 3_000, timeout=30, message="settled at level 1")
    wait_until(lambda: _balance(shop, up_token)["available"] == 1_500, timeout=30, message="settled at level 2")
    assert _records(shop, d_token, o1["order_id"]) == [("SETTLED", 1_000, 0)]
    # Nothing for the cycle, the self-binding or the distributor whose code came second.
    assert _bound_customers(shop, other_token) == 0 and _bound_customers(shop, up_token) == 1
    assert _balance(shop, other_token)["available"] == 0

    # The distributor withdraws everything; FINANCE approves; the provider pays it.
    withdrawal = ok(_call(shop, "POST", "/v1/me/withdrawals", d_token, json={
        "idempotency_key": uuid.uuid4().hex, "amount": {"amount": "3000", "currency": "CNY"}}))["withdrawal"]
    refused(_call(shop, "POST", "/v1/me/withdrawals", d_token, json={
        "idempotency_key": uuid.uuid4().hex, "amount": {"amount": "100", "currency": "CNY"}}), 400,
        "WITHDRAWAL_INSUFFICIENT")
    ok(shop.call("POST", f"/v1/staff/withdrawals/{withdrawal['withdrawal_id']}:approve", channel=None,
                 token=finance, json={}))
    wait_until(lambda: _balance(shop, d_token)["withdrawn"] == 3_000, timeout=30, message="paid out")

    # A complaint after the window: FINANCE refunds O1 in full. The distributor's withdrawn
    # commission becomes debt (never a negative balance); the upline's comes off its balance.
    _refund(shop, finance, o1, 1, after_window=True)
    wait_until(lambda: _balance(shop, d_token) == {"available": 0, "withdrawing": 0, "withdrawn": 3_000,
                                                   "debt": 1_000}, timeout=30, message="debt")
    wait_until(lambda: _balance(shop, up_token)["available"] == 1_000, timeout=30, message="clawed back at L2")
    assert _records(shop, d_token, o1["order_id"]) == [("VOID", 1_000, 1_000)]

    # The next commission pays the debt first.
    o4 = _order(shop, b_token, sku, 1, code)
    _complete(shop, b_token, o4["order_id"])
    wait_until(lambda: _balance(shop, d_token)["debt"] == 0, timeout=30, message="debt repaid")
    assert _balance(shop, d_token) == {"available": 0, "withdrawing": 0, "withdrawn": 3_000, "debt": 0}
    wait_until(lambda: _balance(shop, up_token)["available"] == 1_500, timeout=30, message="L2 settled again")
    summary = _summary(shop, d_token)
    # Level 1 earned 1,000 + 2,000 + 2,000 + 1,000 and refunds voided 1,000 + 1,000 + 1,000.
    assert (_amount(summary.get("settled")), _amount(summary.get("void"))) == (3_000, 3_000)

    # The finance desk's day: 60,000 sold, 30,000 refunded (one unit of O2 and of O3, all of
    # O1); commissions of the orders settled, less O1's reversed; the sandbox provider's
    # statement agrees with the payment ledger line by line.
    day = _business_day(staff_view["paid_at"])

    def statement() -> dict:
        return ok(shop.call("GET", f"/v1/staff/finance/statements/{day}", channel=None, token=finance))["statement"]

    wait_until(lambda: _amount(statement().get("commissions")) == 4_500, timeout=30, message="the day's commissions")
    figures = statement()
    assert (_amount(figures.get("sales")), _amount(figures.get("refunds")), figures.get("settled_orders")) == (
        60_000, 30_000, 4)
    assert _amount(figures.get("supplier_payables")) == 0
    reconciled = ok(shop.call("GET", f"/v1/staff/finance/reconciliations/{day}", channel=None, token=finance))
    assert reconciled.get("mismatches", []) == []
    assert (_amount(reconciled.get("our_payments")), _amount(reconciled.get("provider_payments"))) == (60_000, 60_000)
    assert (_amount(reconciled.get("our_refunds")), _amount(reconciled.get("provider_refunds"))) == (30_000, 30_000)


def _business_day(rfc3339: str) -> str:
    """The merchant's business day (Asia/Shanghai) of a moment."""
    at = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return at.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
