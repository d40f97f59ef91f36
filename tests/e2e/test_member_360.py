"""The staff's member views through the gateway: search by phone suffix and tier, the 360°
view after an order and a check-in, a GUIDE's reduced view, the view's database budget,
and for both routes: bad input → 400 with field violations, another merchant → not found,
the wrong role → denied; tags, RFM and segments read from the member's facts."""
from __future__ import annotations

import uuid
from collections import Counter

import httpx

from siyu_kit.ids import new_id
from siyu_kit.metrics import db_commands
from tests.support import wait_until
from tests.support.shop import Shop, ok, paid_order, refused, staff_with

# Tests here read what the merchant holds as a whole, or change it: a new merchant for each.
SHOP_PER_TEST = True

SEARCH = "/v1/staff/members:search"

# GetMember360's MongoDB commands in the member service, measured 11 with a referrer
# (member, merchant, points account, coupons, balance, facts, referral ×3, phones, and the
# referral's cards and phones run after); the budget leaves one.
BUDGET = 12


def overview(shop: Shop, member_id: str, token: str | None = None) -> httpx.Response:
    path = f"/v1/staff/members/{member_id}/overview"
    return shop.call("GET", path, channel=None, token=token) if token else shop.as_staff("GET", path)


def bind_phone(shop: Shop, stack, token: str) -> str:
    phone = "139" + str(uuid.uuid4().int)[:8]
    ok(shop.call("POST", "/v1/me/phone/sms-code", token=token, json={"phone": phone}))
    sms = httpx.get(stack.wechat_url + "/_standin/sms", params={"phone": phone}, timeout=10).json()["messages"]
    code = "".join(ch for ch in sms[-1] if ch.isdigit())[:6]
    ok(shop.call("POST", "/v1/me/phone/sms", token=token, json={"phone": phone, "code": code}))
    return phone


def test_search_and_the_360_view_after_an_order_and_a_check_in(shop, stack):
    inviter = shop.login("m360-inviter-" + uuid.uuid4().hex[:8])
    code = ok(shop.call("GET", "/v1/me/referral", token=inviter["access_token"]))["invite_code"]
    login = ok(shop.call("POST", "/v1/auth/login", json={"code": f"sandbox:m360-{uuid.uuid4().hex[:10]}",
                                                         "invite_code": code}))
    token, member_id = login["access_token"], login["member"]["member_id"]
    phone = bind_phone(shop, stack, token)
    masked = f"{phone[:3]}****{phone[-4:]}"
    order_id = paid_order(shop, token, shop.sku("baby-lotion"))["order_id"]
    ok(shop.call("POST", "/v1/me/check-ins", token=token, json={}))

    found = ok(shop.as_staff("GET", SEARCH, params={"phone_suffix": phone[-4:]}))["members"]
    assert [m["member_id"] for m in found] == [member_id] and found[0]["phone_masked"] == masked
    assert phone not in str(found)
    regular = ok(shop.as_staff("GET", SEARCH, params={"tier": "TIER_REGULAR", "phone_suffix": phone[-4:]}))
    assert [m["member_id"] for m in regular["members"]] == [member_id]
    gold = ok(shop.as_staff("GET", SEARCH, params={"tier": "TIER_GOLD", "phone_suffix": phone[-4:]}))
    assert gold.get("members", []) == []
    h5 = ok(shop.as_staff("GET", SEARCH, params={"channel": "CHANNEL_H5", "consent": "CONSENT_FILTER_NOT_GIVEN",
                                                  "phone_suffix": phone[-4:]}))
    assert [m["member_id"] for m in h5["members"]] == [member_id]
    assert ok(shop.as_staff("GET", SEARCH, params={"tags": "vip", "phone_suffix": phone[-4:]})).get("members",
                                                                                                     []) == []
    # Paging: one at a time through the shop's members, each once.
    seen, token_ = [], ""
    while True:
        page = ok(shop.as_staff("GET", SEARCH, params={"page_size": 1, "page_token": token_}))
        seen += [m["member_id"] for m in page.get("members", [])]
        token_ = page.get("next_page_token", "")
        if not token_:
            break
    assert len(seen) == len(set(seen)) and {member_id, inviter["member"]["member_id"]} <= set(seen)

    view = ok(overview(shop, member_id))["member"]
    assert view["profile"]["member_id"] == member_id and view["profile"]["phone_masked"] == masked
    assert phone not in str(view)
    assert view["tier"] == "TIER_REGULAR" and int(view["growth"]) >= 1 and view["next_tier"] == "TIER_SILVER"
    assert int(view["points"]["balance"]) >= 10  # the check-in's points at least
    orders = view["orders"]
    assert orders["available"] is True and orders["order_count"] == 1 and orders["paid_count"] == 1
    assert orders["last_order_id"] == order_id and int(orders["paid_amount"]) > 0
    assert view["referral"]["referrer"]["member_id"] == inviter["member"]["member_id"]
    assert view["referral"]["referrer"]["nickname"].endswith("*") or not view["referral"]["referrer"]["nickname"]
    assert {c["state"] for c in view["coupons"]} == {"MEMBER_COUPON_STATE_AVAILABLE", "MEMBER_COUPON_STATE_LOCKED",
                                                      "MEMBER_COUPON_STATE_USED", "MEMBER_COUPON_STATE_EXPIRED",
                                                      "MEMBER_COUPON_STATE_REVOKED"}
    assert "balance" in view
    inviter_view = ok(overview(shop, inviter["member"]["member_id"]))["member"]
    assert inviter_view["referral"]["invitee_count"] == 1
    assert [c["member_id"] for c in inviter_view["referral"]["invitees"]] == [member_id]
    assert inviter_view["referral"]["invitees"][0]["phone_masked"] == masked

    # A GUIDE sees the member masked, without balance.
    guide = staff_with(shop, "GUIDE")
    as_guide = ok(overview(shop, member_id, guide))["member"]
    assert as_guide["profile"]["phone_masked"] == masked and "balance" not in as_guide
    assert ok(shop.call("GET", SEARCH, channel=None, token=guide,
                        params={"phone_suffix": phone[-4:]}))["members"][0]["phone_masked"] == masked

    # The view's database round trips stay within the budget.
    before = Counter(db_commands(stack.metrics_url("member")))
    ok(overview(shop, member_id))
    spent = Counter(db_commands(stack.metrics_url("member"))) - before
    assert 0 < spent["GetMember360"] <= BUDGET, spent


def test_bad_input_other_merchants_and_wrong_roles(shop, other_shop):
    login = shop.login("m360-" + uuid.uuid4().hex[:8])
    member_id = login["member"]["member_id"]
    resp = refused(shop.as_staff("GET", SEARCH, params={
        "phone_suffix": "12a", "segment_id": "seg_x", "page_size": 500, "page_token": "nope",
        "registered_from": "2026-01-02T00:00:00Z", "registered_before": "2026-01-01T00:00:00Z"}), 400)
    named = {v["field"] for v in resp["field_violations"]}
    assert {"phone_suffix", "segment_id", "page_size"} <= named
    resp = refused(overview(shop, "not-an-id"), 400)
    assert {v["field"] for v in resp["field_violations"]} == {"member_id"}
    # Another merchant's staff: not found, and not listed.
    refused(overview(other_shop, member_id), 404)
    theirs = ok(other_shop.as_staff("GET", SEARCH, params={"page_size": 100})).get("members", [])
    assert member_id not in {m["member_id"] for m in theirs}
    # Roles without member access, and members, are refused.
    for role in ("FINANCE",):
        staff = staff_with(shop, role)
        refused(overview(shop, member_id, staff), 403)
        refused(shop.call("GET", SEARCH, channel=None, token=staff), 403)
    assert shop.call("GET", SEARCH, token=login["access_token"]).status_code == 401
    assert overview(shop, member_id, login["access_token"]).status_code == 401


def test_tags_rfm_and_segments_from_the_members_facts(shop):
    """Tags, RFM and segments come from the member's facts, which tagging and paid orders
    keep: the search filters on them and the view shows them."""
    tagged_login = shop.login("m360-tag-" + uuid.uuid4().hex[:8])
    tagged = tagged_login["member"]["member_id"]
    plain = shop.login("m360-plain-" + uuid.uuid4().hex[:8])["member"]["member_id"]
    group = ok(shop.as_staff("POST", "/v1/staff/tag-groups", json={"name": f"兴趣-{uuid.uuid4().hex[:6]}"}))["group"]
    vip = ok(shop.as_staff("POST", f"/v1/staff/tag-groups/{group['group_id']}/tags",
                           json={"name": f"vip-{uuid.uuid4().hex[:6]}"}))["tag"]["tag_id"]
    ok(shop.as_staff("POST", f"/v1/staff/tags/{vip}:tagMembers", json={"member_ids": [tagged]}))
    segment = ok(shop.as_staff("POST", "/v1/staff/segments", json={
        "name": "VIP", "rule": {"conditions": [{"field": "tag", "op": "any", "values": [vip]}]}}))["segment"][
        "segment_id"]

    def found(**params) -> list[str]:
        return [m["member_id"] for m in ok(shop.as_staff("GET", SEARCH, params={"page_size": 100, **params})).get(
            "members", [])]

    assert found(tags=[vip]) == [tagged] and found(segment_id=segment) == [tagged]
    assert found(tags=[vip, "first-purchase"]) == []
    assert found(segment_id=new_id("seg")) == [], "an unknown segment matches nobody"
    everyone = {m["member_id"]: m for m in ok(shop.as_staff("GET", SEARCH, params={"page_size": 100}))["members"]}
    assert vip in everyone[tagged]["tags"]
    assert not everyone[plain].get("tags")
    # A paid order gives RFM scores and a group.
    paid_order(shop, tagged_login["access_token"], shop.new_sku(stock=5, price=12000))
    wait_until(lambda: "rfm" in ok(overview(shop, tagged))["member"], message="RFM from the paid order")
    view = ok(overview(shop, tagged))["member"]
    assert vip in view["tags"] and view["rfm"]["recency"] == 5 and view["rfm"]["group"]
    assert found(rfm_group=view["rfm"]["group"], tags=[vip]) == [tagged]
    assert "rfm" not in ok(overview(shop, plain))["member"]
