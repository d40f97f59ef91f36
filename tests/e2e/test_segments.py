"""Tags, RFM and segments over HTTP, as the staff console uses them: staff make a tag
group and a tag and tag members in a batch (idempotent; unknown ids come back untouched);
a member's paid order reaches their statistics, RFM scores and the first-purchase tag;
consent reaches their facts; a rule previews its count, is saved, counted and listed by
cursor; a member's persona follows and unfollows reach the followed_persona condition.
Every new route: bad input → 400 with field violations and nothing written,
another merchant → not found, a wrong role → denied (the cross-merchant table of
test_commerce_every_rpc has a segments block too)."""
from __future__ import annotations

import uuid

from tests.support.content import new_persona
from tests.support.coupons import active_template
from tests.support import wait_until
from tests.support.shop import Shop, ok, paid_order, refused, staff_with

SEGMENTS = "/v1/staff/segments"


def tag(shop: Shop) -> str:
    group = ok(shop.as_staff("POST", "/v1/staff/tag-groups", json={"name": f"兴趣-{uuid.uuid4().hex[:6]}"}))["group"]
    return ok(shop.as_staff("POST", f"/v1/staff/tag-groups/{group['group_id']}/tags",
                            json={"name": f"咖啡-{uuid.uuid4().hex[:6]}"}))["tag"]["tag_id"]


def member(shop: Shop) -> tuple[str, str]:
    done = shop.login("seg-" + uuid.uuid4().hex[:10])
    return done["access_token"], done["member"]["member_id"]


def count(shop: Shop, *conditions: dict) -> int:
    return int(ok(shop.as_staff("POST", SEGMENTS + ":preview", json={"rule": {"conditions": list(conditions)}}))
               .get("member_count", 0))


def has_tag(tag_id: str) -> dict:
    return {"field": "tag", "op": "any", "values": [tag_id]}


def test_tags_stats_rfm_and_a_saved_segment(shop):
    buyer_token, buyer = member(shop)
    _, other = member(shop)
    mine = tag(shop)
    stranger = "mem_" + "0" * 26
    tagged = ok(shop.as_staff("POST", f"/v1/staff/tags/{mine}:tagMembers", json={"member_ids": [buyer, other,
                                                                                                 stranger]}))
    assert (tagged["tagged"], tagged["unknown_member_ids"]) == (2, [stranger])
    assert ok(shop.as_staff("POST", f"/v1/staff/tags/{mine}:tagMembers",
                            json={"member_ids": [buyer]})).get("tagged", 0) == 0      # idempotent
    assert count(shop, has_tag(mine)) == 2
    refused(shop.as_staff("DELETE", f"/v1/staff/tags/{mine}"), 400, "TAG_IN_USE")
    # A paid order: statistics, RFM and the first-purchase tag follow.
    ok(shop.call("POST", "/v1/me/profile:consent", token=buyer_token, json={"consent": True}))
    paid_order(shop, buyer_token, shop.new_sku(stock=5, price=12000))
    first = {"field": "tag", "op": "all", "values": ["first-purchase"]}
    wait_until(lambda: count(shop, has_tag(mine), first) == 1, message="first purchase in the facts")
    assert count(shop, has_tag(mine), {"field": "rfm_r", "op": "in", "numbers": ["5"]},
                 {"field": "spend_365", "op": "gte", "numbers": ["12000"]},
                 {"field": "last_order", "op": "within", "numbers": ["1"]}) == 1
    wait_until(lambda: count(shop, has_tag(mine), {"field": "marketing_consent", "op": "in", "numbers": ["1"]}) == 1,
               message="consent in the facts")
    # Saved: counted live and listed by cursor.
    rule = {"any": True, "conditions": [first, {"field": "tag", "op": "none", "values": ["first-purchase"]}],
            "rules": [{"conditions": [has_tag(mine)]}]}
    everyone = ok(shop.as_staff("POST", SEGMENTS + ":preview", json={"rule": rule}))["member_count"]
    made = ok(shop.as_staff("POST", SEGMENTS, json={"name": "咖啡客", "rule": {"conditions": [has_tag(mine)]}}))
    seg = made["segment"]["segment_id"]
    assert int(everyone) >= 2
    got = ok(shop.as_staff("GET", f"{SEGMENTS}/{seg}"))["segment"]
    assert (got["name"], got["member_count"]) == ("咖啡客", "2")
    page = ok(shop.as_staff("GET", f"{SEGMENTS}/{seg}/members", params={"page_size": 1}))
    rest = ok(shop.as_staff("GET", f"{SEGMENTS}/{seg}/members", params={"page_size": 1,
                                                                       "page_token": page["next_page_token"]}))
    assert page["member_ids"] + rest["member_ids"] == sorted([buyer, other]) and not rest.get("next_page_token")
    assert seg in [s["segment_id"] for s in ok(shop.as_staff("GET", SEGMENTS)).get("segments", [])]
    ok(shop.as_staff("POST", f"/v1/staff/tags/{mine}:untagMembers", json={"member_ids": [other]}))
    assert ok(shop.as_staff("GET", f"{SEGMENTS}/{seg}"))["segment"]["member_count"] == "1"
    ok(shop.as_staff("DELETE", f"{SEGMENTS}/{seg}"))
    refused(shop.as_staff("GET", f"{SEGMENTS}/{seg}"), 404)


def test_follows_reach_the_followed_persona_condition(shop):
    (one_token, _), (two_token, _) = member(shop), member(shop)
    persona, other = new_persona(shop)["persona_id"], new_persona(shop)["persona_id"]
    follows = {"field": "followed_persona", "op": "in", "values": [persona]}
    for token in (one_token, two_token):
        ok(shop.call("POST", "/v1/me/follows", token=token, json={"persona_id": persona}))
    ok(shop.call("POST", "/v1/me/follows", token=one_token, json={"persona_id": other}))
    wait_until(lambda: count(shop, follows) == 2, message="both follows in the facts")
    ok(shop.call("DELETE", f"/v1/me/follows/{persona}", token=two_token))
    wait_until(lambda: count(shop, follows) == 1, message="the unfollow in the facts")
    assert count(shop, {"field": "followed_persona", "op": "in", "values": [persona, other]}) == 1


def test_rfm_settings_and_bad_input_roles_and_other_merchants(shop, other_shop):
    settings = {"recency_days": [7, 30, 90, 180], "frequency_counts": [2, 4, 6, 8],
                "monetary_amounts": ["100", "200", "300", "400"], "midpoint": 3, "lapsed_days": 60}
    ok(shop.as_staff("PUT", "/v1/staff/rfm-settings", json={"settings": settings}))
    assert ok(shop.as_staff("GET", "/v1/staff/rfm-settings"))["settings"]["lapsed_days"] == 60
    refused(shop.as_staff("PUT", "/v1/staff/rfm-settings", json={"settings": {**settings, "midpoint": 9}}), 400,
            "INVALID_FIELDS", fields={"settings.midpoint"})
    refused(shop.as_staff("PUT", "/v1/staff/rfm-settings", json={"settings": {
        **settings, "recency_days": [30, 7, 90, 180], "frequency_counts": [1]}}), 400, "INVALID_FIELDS",
        fields={"settings.recency_days", "settings.frequency_counts"})
    assert ok(shop.as_staff("GET", "/v1/staff/rfm-settings"))["settings"]["recency_days"] == [7, 30, 90, 180]
    refused(shop.as_staff("POST", SEGMENTS + ":preview", json={"rule": {"conditions": [
        {"field": "nope", "op": "in", "values": ["x"]}, {"field": "tier", "op": "gte", "values": ["GOLD"]}]}}),
        400, "INVALID_FIELDS", fields={"rule.conditions[0].field", "rule.conditions[1].op"})
    before = ok(shop.as_staff("GET", SEGMENTS, params={"page_size": 100})).get("segments", [])
    refused(shop.as_staff("POST", SEGMENTS, json={"name": "", "rule": {}}), 400, "INVALID_FIELDS", fields={"name"})
    assert ok(shop.as_staff("GET", SEGMENTS, params={"page_size": 100})).get("segments", []) == before
    mine = tag(shop)
    refused(shop.as_staff("POST", f"/v1/staff/tags/{mine}:tagMembers", json={"member_ids": ["x"] * 1001}), 400,
            "INVALID_FIELDS", fields={"member_ids"})
    refused(shop.as_staff("POST", "/v1/staff/tags/nope:tagMembers", json={"member_ids": []}), 400,
            "INVALID_FIELDS", fields={"tag_id", "member_ids"})
    guide = staff_with(shop, "GUIDE")
    for method, path in (("GET", "/v1/staff/rfm-settings"), ("GET", "/v1/staff/tag-groups"), ("GET", SEGMENTS)):
        refused(shop.call(method, path, channel=None, token=guide), 403)
    # Another merchant reaches none of it.
    _, buyer = member(shop)
    refused(other_shop.as_staff("POST", f"/v1/staff/tags/{mine}:tagMembers", json={"member_ids": [buyer]}), 404)
    seg = ok(shop.as_staff("POST", SEGMENTS, json={"name": "A", "rule": {"conditions": [has_tag(mine)]}}))[
        "segment"]["segment_id"]
    refused(other_shop.as_staff("GET", f"{SEGMENTS}/{seg}"), 404)
    other_tag = tag(other_shop)
    assert ok(other_shop.as_staff("POST", f"/v1/staff/tags/{other_tag}:tagMembers",
                                  json={"member_ids": [buyer]}))["unknown_member_ids"] == [buyer]


def test_a_marketing_coupon_granted_to_a_segment_reaches_consenting_members_once(shop):
    (yes_token, yes), (no_token, no) = member(shop), member(shop)
    ok(shop.call("POST", "/v1/me/profile:consent", token=yes_token, json={"consent": True}))
    mine = tag(shop)
    ok(shop.as_staff("POST", f"/v1/staff/tags/{mine}:tagMembers", json={"member_ids": [yes, no]}))
    seg = ok(shop.as_staff("POST", SEGMENTS, json={"name": "营销", "rule": {"conditions": [has_tag(mine)]}}))[
        "segment"]["segment_id"]
    wait_until(lambda: count(shop, has_tag(mine), {"field": "marketing_consent", "op": "in", "numbers": ["1"]}) == 1,
               message="consent in the facts")
    template = active_template(shop, marketing=True, staff_only=True)
    assert template["marketing"] is True
    path = f"/v1/staff/coupon-templates/{template['template_id']}/grants"
    refused(shop.as_staff("POST", path, json={"idempotency_key": uuid.uuid4().hex, "segment_id": seg,
                                              "member_ids": [yes]}), 400, "INVALID_FIELDS", fields={"member_ids"})
    refused(shop.as_staff("POST", path, json={"idempotency_key": uuid.uuid4().hex,
                                              "segment_id": "seg_" + "0" * 26}), 404)
    key = uuid.uuid4().hex
    grant = ok(shop.as_staff("POST", path, json={"idempotency_key": key, "segment_id": seg}))["grant"]
    assert ok(shop.as_staff("POST", path, json={"idempotency_key": key, "segment_id": seg}))["grant"][
        "grant_id"] == grant["grant_id"]
    done = wait_until(lambda: (g := ok(shop.as_staff("GET", f"/v1/staff/coupon-grants/{grant['grant_id']}"))[
        "grant"])["state"] == "DONE" and g, message="grant done")
    assert done["granted"] == 1

    def held(token: str) -> list:
        return [c for c in ok(shop.call("GET", "/v1/me/coupons", token=token)).get("coupons", [])
                if c.get("template_id") == template["template_id"]]
    assert (len(held(yes_token)), len(held(no_token))) == (1, 0)
