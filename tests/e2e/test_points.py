"""Points over HTTP, as the member centre and the staff desk use them: a purchase earns
frozen points; staff credit points with a reason (once per key); the member sees balance,
available, frozen, held, owed and what expires when, and pages the history; staff read
the account with its audit and set the merchant's points terms. Every new route is
refused across merchants, for the wrong role and with bad input (400 with field
violations, nothing written)."""
from __future__ import annotations


from tests.support import wait_until
from tests.support.shop import ok, paid_order, refused

LOTION = "baby-lotion"  # 89.00 yuan




def test_the_member_centre_and_the_staff_desk_see_the_same_points(shop):
    login = shop.login("union-points")
    token, member_id = login["access_token"], login["member"]["member_id"]
    order_id = paid_order(shop, token, shop.sku(LOTION))["order_id"]
    mine = wait_until(lambda: (p := ok(shop.call("GET", "/v1/me/points", token=token))).get("entries") and p,
                      message="points earned")
    assert (int(mine["balance"]), int(mine["frozen"]), int(mine.get("available", 0))) == (89, 89, 0)
    assert mine["entries"][0]["kind"] == "POINTS_MOVEMENT_EARN" and mine["entries"][0]["order_id"] == order_id

    adjust = {"points": "300", "reason": "welcome gift", "idempotency_key": "welcome-1"}
    first = ok(shop.as_staff("POST", f"/v1/staff/members/{member_id}/points:adjust", json=adjust))
    again = ok(shop.as_staff("POST", f"/v1/staff/members/{member_id}/points:adjust", json=adjust))
    assert first["applied"] is True and again.get("applied", False) is False
    assert again["entry"]["entry_id"] == first["entry"]["entry_id"]

    mine = ok(shop.call("GET", "/v1/me/points", token=token))
    assert (int(mine["balance"]), int(mine["available"]), int(mine["frozen"])) == (389, 300, 89)
    assert [int(e["points"]) for e in mine["expiring"]] == [300] and mine["expiring"][0]["expires_at"]
    page = ok(shop.call("GET", "/v1/me/points/history?page_size=1", token=token))
    rest = ok(shop.call("GET", f"/v1/me/points/history?page_size=1&page_token={page['next_page_token']}",
                        token=token))
    assert [e["kind"] for e in page["entries"] + rest["entries"]] == ["POINTS_MOVEMENT_ADJUST", "POINTS_MOVEMENT_EARN"]
    assert page["entries"][0]["reason"] == "welcome gift"

    staff = ok(shop.as_staff("GET", f"/v1/staff/members/{member_id}/points"))
    assert int(staff["account"]["balance"]) == 389 and staff["audit"]["consistent"] is True
    history = ok(shop.as_staff("GET", f"/v1/staff/members/{member_id}/points/history"))
    assert len(history["entries"]) == 2


def test_points_settings_are_read_and_changed_on_their_version(shop):
    current = ok(shop.as_staff("GET", "/v1/staff/points-settings"))
    assert current["settings"]["points_per_yuan"] == 100 and current["settings"]["after_sales_days"] == 7
    changed = dict(current["settings"], max_share_bp=3000)
    done = ok(shop.as_staff("PUT", "/v1/staff/points-settings",
                            json={"settings": changed, "expected_version": current["version"]}))
    assert done["settings"]["max_share_bp"] == 3000
    refused(shop.as_staff("PUT", "/v1/staff/points-settings",
                          json={"settings": changed, "expected_version": current["version"]}), 409)
    refused(shop.as_staff("PUT", "/v1/staff/points-settings",
                          json={"settings": dict(changed, points_per_yuan=300),
                                "expected_version": done["version"]}), 400, fields={"settings.step"})


def test_new_points_routes_refuse_other_merchants_wrong_roles_and_bad_input(shop, other_shop):
    login = shop.login("union-points-guard")
    member_id = login["member"]["member_id"]
    # Another merchant's staff do not find this member.
    other = other_shop.as_staff("GET", f"/v1/staff/members/{member_id}/points")
    refused(other, 404)
    refused(other_shop.as_staff("POST", f"/v1/staff/members/{member_id}/points:adjust",
                                json={"points": "5", "reason": "r", "idempotency_key": "k1"}), 404)
    # A member token cannot use the staff routes; no token cannot read the member centre.
    refused(shop.call("GET", f"/v1/staff/members/{member_id}/points", channel=None,
                      token=login["access_token"]), 401)
    refused(shop.call("GET", "/v1/me/points/history"), 401)
    # Bad input: field violations, nothing written.
    bad = refused(shop.as_staff("POST", f"/v1/staff/members/{member_id}/points:adjust",
                                json={"points": "0", "reason": "", "idempotency_key": "has space"}), 400)
    assert {v["field"] for v in bad["field_violations"]} >= {"reason", "idempotency_key"}
    refused(shop.call("GET", "/v1/me/points/history?page_token=nope", token=login["access_token"]), 400,
            fields={"page_token"})
    mine = ok(shop.call("GET", "/v1/me/points", token=login["access_token"]))
    assert int(mine.get("balance", 0)) == 0 and not mine.get("entries")
