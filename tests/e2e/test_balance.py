"""Stored value over HTTP, as the staff desk and the member centre use it: staff create and
withdraw recharge packages, the member sees the balance and the packages on offer,
cheapest first, and pages the (empty) history; staff read the member's balance. Bad input
is 400 with field violations and writes nothing; another merchant finds nothing."""
from __future__ import annotations

from tests.support.shop import Shop, ok, refused


def test_packages_and_balance_through_the_gateway(shop: Shop, other_shop: Shop):
    login = shop.login("union-balance")
    token, member_id = login["access_token"], login["member"]["member_id"]
    big = ok(shop.as_staff("POST", "/v1/staff/recharge-packages", json={
        "name": "充500送150", "price": "50000", "bonus": "15000", "idempotency_key": "big"}))["package"]
    small = ok(shop.as_staff("POST", "/v1/staff/recharge-packages", json={
        "name": "充100送20", "price": "10000", "bonus": "2000", "idempotency_key": "small"}))["package"]
    mine = ok(shop.call("GET", "/v1/me/balance", token=token))
    assert [p["package_id"] for p in mine["packages"]] == [small["package_id"], big["package_id"]]
    assert int(mine["balance"].get("available", 0)) == 0
    assert ok(shop.call("GET", "/v1/me/balance/history", token=token)).get("entries", []) == []

    withdrawn = ok(shop.as_staff("POST", f"/v1/staff/recharge-packages/{small['package_id']}:setState",
                                 json={"state": "RECHARGE_PACKAGE_STATE_INACTIVE"}))["package"]
    assert withdrawn["state"] == "RECHARGE_PACKAGE_STATE_INACTIVE"
    mine = ok(shop.call("GET", "/v1/me/balance", token=token))
    assert [p["package_id"] for p in mine["packages"]] == [big["package_id"]]
    staff = ok(shop.as_staff("GET", f"/v1/staff/members/{member_id}/balance"))
    assert staff.get("recharges", []) == [] and int(staff["balance"].get("held", 0)) == 0

    refused(shop.as_staff("POST", "/v1/staff/recharge-packages", json={
        "name": "", "price": "99", "bonus": "-1", "idempotency_key": "bad key"}), 400,
        fields={"name", "price", "bonus", "idempotency_key"})
    listed = ok(shop.as_staff("GET", "/v1/staff/recharge-packages"))["packages"]
    assert len(listed) == 2  # the refused one was not written

    # Another merchant's staff reach none of it.
    refused(other_shop.as_staff("POST", f"/v1/staff/recharge-packages/{big['package_id']}:setState",
                                json={"state": "RECHARGE_PACKAGE_STATE_INACTIVE"}), 404)
    refused(other_shop.as_staff("GET", f"/v1/staff/members/{member_id}/balance"), 404)
    assert ok(other_shop.as_staff("GET", "/v1/staff/recharge-packages")).get("packages", []) == []
    states = {p["package_id"]: p["state"] for p in ok(shop.as_staff("GET", "/v1/staff/recharge-packages"))["packages"]}
    assert states[big["package_id"]] == "RECHARGE_PACKAGE_STATE_ACTIVE"
