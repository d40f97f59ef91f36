"""Coupons through the gateway, as the staff console and the mini-program use them: an
operator designs and runs a template, members claim it and see their coupons and which of
them fit a cart, a grant job reports its progress; bad input is a 400 naming each field and
writes nothing; another merchant finds nothing; a role without the right is denied."""
from __future__ import annotations

import uuid

from tests.support import wait_until
from tests.support.coupons import active_template, claim, creation, design
from tests.support.shop import Shop, ok, staff_with

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True


def violations(resp) -> dict[str, str]:
    return {v["field"]: v["description"] for v in resp.json()["error"].get("field_violations", [])}


def member(shop: Shop) -> tuple[str, str]:
    done = shop.login("cpn-" + uuid.uuid4().hex[:10])
    return done["access_token"], done["member"]["member_id"]



def test_an_operator_runs_a_template_and_members_claim_and_use_the_cart_read(shop):
    draft = ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json=creation()))["template"]
    assert draft["state"] == "COUPON_TEMPLATE_STATE_DRAFT"
    tid = draft["template_id"]
    edited = ok(shop.as_staff("PUT", f"/v1/staff/coupon-templates/{tid}", json=design(total="2")))["template"]
    assert edited["total"] == "2"
    ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{tid}:setState",
                     json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}))
    (alice, _), (bob, _), (carol, _) = member(shop), member(shop), member(shop)
    first = ok(claim(shop, alice, tid, key="k-alice"))
    assert ok(claim(shop, alice, tid, key="k-alice"))["coupon"]["coupon_id"] == first["coupon"]["coupon_id"]
    limit = claim(shop, alice, tid)
    assert (limit.status_code, limit.json()["error"]["reason"]) == (400, "COUPON_LIMIT_REACHED")
    ok(claim(shop, bob, tid))
    sold_out = claim(shop, carol, tid)
    assert sold_out.json()["error"]["reason"] == "COUPON_SOLD_OUT"

    mine = ok(shop.call("GET", "/v1/me/coupons", token=alice, params={"states": "MEMBER_COUPON_STATE_AVAILABLE"}))
    assert [c["coupon_id"] for c in mine["coupons"]] == [first["coupon"]["coupon_id"]]
    assert ok(shop.call("GET", "/v1/me/coupons", token=carol)).get("coupons", []) == []

    sku, product = shop.sku("baby-lotion"), shop.product("baby-lotion")
    below = ok(shop.call("POST", "/v1/me/coupons:forCart", token=alice, json={
        "lines": [{"sku_id": sku, "product_id": product, "unit_price": "4000", "quantity": "1"}]}))["options"]
    assert below[0]["discount"]["reason"] == "COUPON_BELOW_THRESHOLD" and not below[0].get("usable", False)
    assert below[0]["discount"]["shortfall"] == "6000"
    usable = ok(shop.call("POST", "/v1/me/coupons:forCart", token=alice, json={
        "lines": [{"sku_id": sku, "product_id": product, "unit_price": "4000", "quantity": "3"}]}))["options"]
    assert usable[0]["usable"] and usable[0]["discount"]["amount"] == "1000"

    stats = ok(shop.as_staff("GET", f"/v1/staff/coupon-templates/{tid}/stats"))
    assert stats["issued"] == "2"
    ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{tid}:setState", json={"state": "COUPON_TEMPLATE_STATE_ENDED"}))
    listed = ok(shop.as_staff("GET", "/v1/staff/coupon-templates", params={"state": "COUPON_TEMPLATE_STATE_ENDED"}))
    assert tid in [t["template_id"] for t in listed["templates"]]


def test_a_grant_job_reports_its_progress(shop):
    template = active_template(shop, staff_only=True)
    members = [member(shop)[1] for _ in range(3)]
    body = {"member_ids": members, "idempotency_key": uuid.uuid4().hex}
    job = ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{template['template_id']}/grants", json=body))["grant"]
    assert job["members"] == 3
    done = wait_until(lambda: (g := ok(shop.as_staff("GET", f"/v1/staff/coupon-grants/{job['grant_id']}"))["grant"])
                      ["state"] == "DONE" and g, message="grant done")
    assert done["granted"] == 3 and not done.get("skipped")
    again = ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{template['template_id']}/grants", json=body))
    assert again["grant"]["grant_id"] == job["grant_id"]


def test_bad_input_is_a_400_naming_each_field_and_writes_nothing(shop):
    before = ok(shop.as_staff("GET", "/v1/staff/coupon-templates")).get("templates", [])
    bad = shop.as_staff("POST", "/v1/staff/coupon-templates", json=creation(
        rule={"kind": "COUPON_KIND_PERCENT_OFF", "percent_off_bp": 2000, "scope": "COUPON_SCOPE_PRODUCTS"},
        validity={"days": 0}))
    assert bad.status_code == 400
    assert {"rule.cap", "rule.product_ids", "validity.days"} <= set(violations(bad))
    by_schema = shop.as_staff("POST", "/v1/staff/coupon-templates", json=creation(total="-1", per_member_limit=101))
    assert by_schema.status_code == 400 and {"total", "per_member_limit"} <= set(violations(by_schema))
    keyless = shop.as_staff("POST", "/v1/staff/coupon-templates", json=design())
    assert keyless.status_code == 400 and "idempotency_key" in violations(keyless)
    assert ok(shop.as_staff("GET", "/v1/staff/coupon-templates")).get("templates", []) == before
    token, _ = member(shop)
    no_key = shop.call("POST", "/v1/me/coupons", token=token, json={"template_id": active_template(shop)["template_id"]})
    assert no_key.status_code == 400 and "idempotency_key" in violations(no_key)
    assert ok(shop.call("GET", "/v1/me/coupons", token=token)).get("coupons", []) == []
    no_lines = shop.call("POST", "/v1/me/coupons:forCart", token=token, json={"lines": []})
    assert no_lines.status_code == 400 and "lines" in violations(no_lines)


def test_another_merchant_finds_nothing(shop, other_shop):
    template = active_template(shop)
    tid = template["template_id"]
    token, _ = member(other_shop)
    for method, path, body in (("GET", f"/v1/staff/coupon-templates/{tid}", None),
                               ("GET", f"/v1/staff/coupon-templates/{tid}/stats", None),
                               ("POST", f"/v1/staff/coupon-templates/{tid}:setState",
                                {"state": "COUPON_TEMPLATE_STATE_ENDED"}),
                               ("PUT", f"/v1/staff/coupon-templates/{tid}", design())):
        assert other_shop.as_staff(method, path, json=body).status_code == 404
    assert claim(other_shop, token, tid).status_code == 404
    assert ok(shop.as_staff("GET", f"/v1/staff/coupon-templates/{tid}"))["template"]["state"] == \
        "COUPON_TEMPLATE_STATE_ACTIVE"


def test_roles_without_the_right_are_denied(shop):
    template = active_template(shop)
    tid = template["template_id"]
    guide, finance = staff_with(shop, "GUIDE"), staff_with(shop, "FINANCE")
    for token in (guide, finance):
        assert shop.call("POST", "/v1/staff/coupon-templates", channel=None, token=token,
                         json=creation()).status_code == 403
        assert shop.call("POST", f"/v1/staff/coupon-templates/{tid}/grants", channel=None, token=token,
                         json={"member_ids": [member(shop)[1]], "idempotency_key": "g1"}).status_code == 403
    assert shop.call("GET", f"/v1/staff/coupon-templates/{tid}/stats", channel=None, token=guide).status_code == 403
    assert shop.call("GET", f"/v1/staff/coupon-templates/{tid}/stats", channel=None, token=finance).status_code == 200
    # A member cannot reach staff routes, and the order service's routes are not on the gateway.
    token, _ = member(shop)
    assert shop.call("GET", "/v1/staff/coupon-templates", token=token).status_code in (401, 403)
    assert claim(shop, None, tid).status_code == 401


def test_the_coupon_centre_and_a_repeated_creation(shop):
    body = creation(name="领券中心 10 off", total="3", per_member_limit=2)
    made = ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json=body))["template"]
    assert ok(shop.as_staff("POST", "/v1/staff/coupon-templates", json=body))["template"]["template_id"] == \
        made["template_id"]
    reused = shop.as_staff("POST", "/v1/staff/coupon-templates", json={**body, "total": "4"})
    assert (reused.status_code, reused.json()["error"]["reason"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    tid = made["template_id"]
    ok(shop.as_staff("POST", f"/v1/staff/coupon-templates/{tid}:setState",
                     json={"state": "COUPON_TEMPLATE_STATE_ACTIVE"}))
    token, _ = member(shop)
    ok(claim(shop, token, tid))
    seen, page_token = {}, ""
    while True:
        page = ok(shop.call("GET", "/v1/me/coupon-templates", token=token,
                            params={"page_size": 50, **({"page_token": page_token} if page_token else {})}))
        seen.update({c["template_id"]: c for c in page.get("coupons", [])})
        page_token = page.get("next_page_token", "")
        if not page_token:
            break
    mine = seen[tid]
    assert (mine["left"], mine["member_left"], mine.get("unlimited", False)) == ("2", 1, False)
    trail = ok(shop.as_staff("GET", "/v1/staff/audit-entries", params={"action": "COUPON_TEMPLATE_STATE_CHANGED",
                                                                       "target_id": tid}))["entries"]
    assert [(e["before"]["state"], e["after"]["state"]) for e in trail] == [("DRAFT", "ACTIVE")]
