"""Commissions and withdrawals through the gateway, as the distributor's app and the
finance desk use them. The order service fills an order's commissions once the
order-commissions work lands; until then these tests publish the order events the order
service sends (the whole order, commissions included) on NATS, and read the result over
HTTP: commission by state, the records, a withdrawal requested and rejected, approval
through the provider's transfer, the finance reads, and every new route refusing bad
input, other merchants and the wrong roles."""
from __future__ import annotations

import uuid


from siyu_kit.ids import new_id
from tests.support import assert_routes_named, block_routes, wait_until
from tests.support.commissions import CommissionOrder
from tests.support.member import publish
from tests.support.shop import Shop, ok, refused, staff_with
from tests.support.stored_value import amount


def distributor(shop: Shop, name: str) -> tuple[str, str]:
    done = shop.login(f"dist-{name}-{uuid.uuid4().hex[:8]}", channel="MINI_PROGRAM")
    return done["access_token"], done["member"]["member_id"]


def summary(shop: Shop, token: str) -> dict:
    return ok(shop.call("GET", "/v1/me/commissions/summary", channel="MINI_PROGRAM", token=token))["summary"]


def available(shop: Shop, token: str) -> int:
    return amount(summary(shop, token)["balance"].get("available"))


async def settled_commission(stack, shop: Shop, member_id: str, paid: int) -> CommissionOrder:
    """An order whose level-1 commission (10 %) is the member's, paid, completed and settled."""
    order = CommissionOrder(shop.data["merchant_id"], new_id("mem"), paid, {1: (member_id, 1000)})
    await publish(stack, order.event("paid"), order.event("completed"), order.event("settled"))
    return order


def withdraw(shop: Shop, token: str, fen: int, key: str = "") -> dict:
    return shop.call("POST", "/v1/me/withdrawals", channel="MINI_PROGRAM", token=token,
                     json={"amount": {"amount": str(fen)}, "idempotency_key": key or uuid.uuid4().hex})


async def test_commission_by_state_then_a_withdrawal_rejected_returns_the_money(stack, shop):
    token, member_id = distributor(shop, "life")
    order = CommissionOrder(shop.data["merchant_id"], new_id("mem"), 30_000, {1: (member_id, 1000)})
    await publish(stack, order.event("paid"))
    wait_until(lambda: amount(summary(shop, token).get("pending")) == 3_000, message="pending")
    await publish(stack, order.event("refunded", refunded=10_000), order.event("completed", refunded=10_000))
    wait_until(lambda: amount(summary(shop, token).get("frozen")) == 2_000, message="frozen, a third voided")
    await publish(stack, order.event("settled", refunded=10_000))
    wait_until(lambda: available(shop, token) == 2_000, message="settled")
    records = ok(shop.call("GET", "/v1/me/commissions?state=COMMISSION_STATE_SETTLED", channel="MINI_PROGRAM",
                           token=token))["records"]
    assert [(r["order_id"], amount(r["amount"]), amount(r["voided"])) for r in records] == [
        (order.order_id, 3_000, 1_000)]
    requested = ok(withdraw(shop, token, 1_500))["withdrawal"]
    assert requested["state"] == "WITHDRAWAL_STATE_REQUESTED" and available(shop, token) == 500
    refused(withdraw(shop, token, 600), 400, "WITHDRAWAL_INSUFFICIENT")
    refused(withdraw(shop, token, 99), 400, "WITHDRAWAL_BELOW_MINIMUM")
    listed = ok(shop.as_staff("GET", "/v1/staff/withdrawals?state=WITHDRAWAL_STATE_REQUESTED"))["withdrawals"]
    assert [w["withdrawal_id"] for w in listed] == [requested["withdrawal_id"]]
    rejected = ok(shop.as_staff("POST", f"/v1/staff/withdrawals/{requested['withdrawal_id']}:reject",
                                json={"reason": "bank details missing"}))["withdrawal"]
    assert rejected["state"] == "WITHDRAWAL_STATE_REJECTED" and available(shop, token) == 2_000
    mine = ok(shop.call("GET", "/v1/me/withdrawals", channel="MINI_PROGRAM", token=token))["withdrawals"]
    assert [(w["state"], w["reason"]) for w in mine] == [("WITHDRAWAL_STATE_REJECTED", "bank details missing")]
    payable = ok(shop.as_staff("GET", "/v1/staff/commissions/payable"))
    assert amount(payable["available"]) >= 2_000
    assert member_id in {p["beneficiary_id"] for p in payable["payees"]}
    liability = ok(shop.as_staff("GET", "/v1/staff/stored-value/liability"))
    assert amount(liability.get("total")) == amount(liability.get("principal")) + amount(liability.get("bonus"))


async def test_an_approved_withdrawal_is_paid_through_the_providers_transfer(stack, shop):
    token, member_id = distributor(shop, "paid")
    await settled_commission(stack, shop, member_id, 20_000)
    wait_until(lambda: available(shop, token) == 2_000, message="settled")
    requested = ok(withdraw(shop, token, 1_000))["withdrawal"]
    ok(shop.as_staff("POST", f"/v1/staff/withdrawals/{requested['withdrawal_id']}:approve", json={}))

    def state() -> str:
        mine = ok(shop.call("GET", "/v1/me/withdrawals", channel="MINI_PROGRAM", token=token))["withdrawals"]
        return next(w["state"] for w in mine if w["withdrawal_id"] == requested["withdrawal_id"])

    wait_until(lambda: state() == "WITHDRAWAL_STATE_PAID", message="paid out")
    balance = summary(shop, token)["balance"]
    assert (amount(balance.get("available")), amount(balance.get("withdrawn"))) == (1_000, 1_000)


async def test_every_new_route_refuses_bad_input_other_merchants_and_wrong_roles(stack, shop, other_shop):
    token, _ = distributor(shop, "rules")
    refused(shop.call("POST", "/v1/me/withdrawals", channel="MINI_PROGRAM", token=token,
                      json={"amount": {"amount": "100"}}), 400, "INVALID_FIELDS", {"idempotency_key"})
    refused(shop.call("GET", "/v1/me/commissions?page_token=nonsense", channel="MINI_PROGRAM", token=token), 400,
            "INVALID_FIELDS", {"page_token"})
    refused(shop.call("GET", "/v1/me/withdrawals?page_size=1000", channel="MINI_PROGRAM", token=token), 400,
            "INVALID_FIELDS", {"page_size"})
    refused(shop.as_staff("POST", "/v1/staff/withdrawals/nope:approve", json={}), 400, "INVALID_FIELDS",
            {"withdrawal_id"})
    refused(shop.as_staff("POST", f"/v1/staff/withdrawals/{new_id('wdr')}:reject", json={}), 400, "INVALID_FIELDS",
            {"reason"})
    settings = ok(shop.as_staff("GET", "/v1/staff/withdrawal-settings"))
    assert settings["settings"]["min_amount"] == "100" and settings["version"] == "1"
    refused(shop.as_staff("PUT", "/v1/staff/withdrawal-settings", json={
        "settings": {"min_amount": "50", "fee_bp": 0, "daily_limit": "1000"}, "expected_version": "1"}), 400,
        "INVALID_FIELDS", {"settings.min_amount"})
    # Another merchant's withdrawal is not found.
    other_token, other_member = distributor(other_shop, "rules")
    refused(withdraw(other_shop, other_token, 100), 400, "WITHDRAWAL_INSUFFICIENT")
    await settled_commission(stack, other_shop, other_member, 10_000)
    wait_until(lambda: available(other_shop, other_token) == 1_000, message="settled in the other shop")
    foreign = ok(withdraw(other_shop, other_token, 500))["withdrawal"]["withdrawal_id"]
    for verb, body in (("approve", {}), ("reject", {"reason": "not ours"})):
        refused(shop.as_staff("POST", f"/v1/staff/withdrawals/{foreign}:{verb}", json=body), 404,
                "WITHDRAWAL_NOT_FOUND")
    assert ok(shop.as_staff("GET", "/v1/staff/withdrawals"))["withdrawals"] == [] or foreign not in {
        w["withdrawal_id"] for w in ok(shop.as_staff("GET", "/v1/staff/withdrawals"))["withdrawals"]}
    assert available(shop, token) == 0  # the other shop's commission is not this member's
    # Wrong roles.
    operator = staff_with(shop, "OPERATOR")
    settings_body = {"settings": {"min_amount": "100", "daily_limit": "1000"}, "expected_version": "1"}
    for method, path, body in (("GET", "/v1/staff/withdrawals", None), ("GET", "/v1/staff/withdrawal-settings", None),
                               ("GET", "/v1/staff/commissions/payable", None),
                               ("GET", "/v1/staff/stored-value/liability", None),
                               ("POST", f"/v1/staff/withdrawals/{new_id('wdr')}:approve", {}),
                               ("POST", f"/v1/staff/withdrawals/{new_id('wdr')}:reject", {"reason": "x"}),
                               ("PUT", "/v1/staff/withdrawal-settings", settings_body)):
        refused(shop.call(method, path, channel=None, token=operator, json=body), 403)
    refused(shop.call("GET", "/v1/me/commissions/summary", channel=None, token=operator), 401)
    # FINANCE changes the terms on the version read; a stale version is a conflict.
    changed = ok(shop.as_staff("PUT", "/v1/staff/withdrawal-settings", json={
        "settings": {"min_amount": "200", "fee_bp": 100, "daily_limit": "90000"}, "expected_version": "1"}))
    assert changed["version"] == "2" and changed["settings"]["fee_bp"] == 100
    refused(shop.as_staff("PUT", "/v1/staff/withdrawal-settings", json={
        "settings": {"min_amount": "200", "fee_bp": 0, "daily_limit": "90000"}, "expected_version": "1"}), 409,
        "VERSION_CONFLICT")
    refused(withdraw(shop, token, 150), 400, "WITHDRAWAL_BELOW_MINIMUM")


def test_every_commission_and_withdrawal_rpc_has_its_cases_here():
    # GetMyCommissionSummary, ListMyCommissions, RequestWithdrawal, ListMyWithdrawals,
    # GetWithdrawalSettings, UpdateWithdrawalSettings, ApproveWithdrawal, RejectWithdrawal,
    # ListWithdrawals, GetCommissionPayable, GetStoredValueLiability.
    routes = block_routes("siyu/member/v1/member.proto", "Commissions and withdrawals")
    assert len(routes) == 11
    assert_routes_named(__file__, routes)
