"""Member profiles through the gateway: a member edits their profile and consent (the
birthday once), staff correct a birthday, an OWNER reveals a member's verified phone with
a reason written to the audit log while other roles are refused, and the birthday job
gives the member of a tier with a birthday coupon that coupon once. Every new route:
bad input → 400 with field violations and nothing written, another merchant → not found,
the wrong role → denied."""
from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from tests.support.coupons import active_template
from tests.support import wait_job_runs, wait_until
from tests.support.shop import Shop, ok, refused, staff_with

PROFILE = "/v1/me/profile"


def member(shop: Shop) -> tuple[str, str]:
    done = shop.login("prf-" + uuid.uuid4().hex[:10])
    return done["access_token"], done["member"]["member_id"]


def profile(shop: Shop, token: str) -> dict:
    return ok(shop.call("GET", PROFILE, token=token))["profile"]


def patch(shop: Shop, token: str, **fields) -> httpx.Response:
    return shop.call("PATCH", PROFILE, token=token, json=fields)


def fields(resp: httpx.Response) -> set[str]:
    return {v["field"] for v in resp.json()["error"].get("field_violations", [])}


def test_a_member_edits_their_profile_and_consent_and_the_birthday_only_once(shop):
    token, member_id = member(shop)
    start = profile(shop, token)
    assert start["member_id"] == member_id and start["version"] == "1"
    assert start["personalised_recommendations"] is True and not start.get("marketing_consent")
    done = ok(patch(shop, token, expected_version="1", nickname="小美", gender="GENDER_FEMALE",
                    region_code="310000", birthday={"month": 2, "day": 29, "year": 2000},
                    personalised_recommendations=False))["profile"]
    assert (done["nickname"], done["gender"], done["region_name"], done["birthday"]) == \
        ("小美", "GENDER_FEMALE", "上海市", {"month": 2, "day": 29, "year": 2000})
    assert done["birthday_locked"] is True and done["personalised_recommendations"] is False
    assert ok(shop.call("GET", "/v1/me", token=token))["member"]["nickname"] == "小美"
    refused(patch(shop, token, expected_version="1", nickname="again"), 409, "VERSION_CONFLICT")
    refused(patch(shop, token, expected_version=done["version"], birthday={"month": 3, "day": 1}), 400,
            "PROFILE_BIRTHDAY_LOCKED")
    consent = ok(shop.call("POST", PROFILE + ":consent", token=token, json={"consent": True}))["profile"]
    assert consent["marketing_consent"] is True and consent["marketing_consent_changed_at"]
    withdrawn = ok(shop.call("POST", PROFILE + ":consent", token=token, json={"consent": False}))["profile"]
    assert not withdrawn.get("marketing_consent") and withdrawn["marketing_consent_changed_at"]
    # Staff correct the birthday (audited); a GUIDE may not.
    body = {"birthday": {"month": 3, "day": 1}, "reason": "ID card shows 1 March"}
    refused(shop.call("POST", f"/v1/staff/members/{member_id}:setBirthday", channel=None,
                      token=staff_with(shop, "GUIDE"), json=body), 403)
    corrected = ok(shop.as_staff("POST", f"/v1/staff/members/{member_id}:setBirthday", json=body))["profile"]
    assert corrected["birthday"] == {"month": 3, "day": 1, "year": 0}
    trail = ok(shop.as_staff("GET", "/v1/staff/audit-entries", params={"action": "MEMBER_BIRTHDAY_CORRECTED",
                                                                        "target_id": member_id}))["entries"]
    assert [e["after"]["reason"] for e in trail] == ["ID card shows 1 March"]


def test_bad_input_is_refused_with_field_violations_and_nothing_is_written(shop):
    token, member_id = member(shop)
    before = profile(shop, token)
    resp = patch(shop, token, expected_version="0", nickname="x" * 65, avatar_url="http://a.example/x.png",
                 region_code="12", birthday={"month": 13, "day": 1})
    refused(resp, 400, "INVALID_FIELDS")
    assert fields(resp) >= {"expected_version", "nickname", "avatar_url", "region_code", "birthday.month"}
    resp = patch(shop, token, expected_version="1", region_code="999999", birthday={"month": 2, "day": 30})
    refused(resp, 400, "INVALID_FIELDS", fields={"region_code", "birthday.day"})
    assert profile(shop, token) == before
    resp = shop.as_staff("POST", "/v1/staff/members/not-an-id:revealPhone", json={"reason": ""})
    refused(resp, 400, fields={"member_id", "reason"})
    resp = shop.as_staff("POST", f"/v1/staff/members/{member_id}:setBirthday",
                         json={"birthday": {"month": 4, "day": 30}, "reason": "x"})
    refused(resp, 400, fields={"reason"})
    resp = shop.as_staff("POST", f"/v1/staff/members/{member_id}:setBirthday",
                         json={"birthday": {"month": 4, "day": 31}, "reason": "typo in April"})
    refused(resp, 400, fields={"birthday.day"})
    assert profile(shop, token) == before
    assert not ok(shop.as_staff("GET", "/v1/staff/audit-entries",
                                params={"target_id": member_id})).get("entries")


def test_another_merchants_member_is_not_found_and_members_cannot_call_staff_routes(shop, other_shop):
    token, member_id = member(shop)
    ok(shop.call("POST", PROFILE + ":consent", token=token, json={"consent": True}))
    before = profile(shop, token)
    refused(other_shop.as_staff("POST", f"/v1/staff/members/{member_id}:revealPhone", json={"reason": "curious"}),
            404)
    refused(other_shop.as_staff("POST", f"/v1/staff/members/{member_id}:setBirthday",
                                json={"birthday": {"month": 1, "day": 1}, "reason": "wrong shop"}), 404)
    # A token of one shop is no member of the other.
    assert shop.call("GET", PROFILE, token=token).status_code == 200
    assert other_shop.call("GET", PROFILE, token=token).status_code in (401, 404)
    assert other_shop.call("PATCH", PROFILE, token=token,
                           json={"expected_version": "1", "nickname": "x"}).status_code in (401, 404)
    assert other_shop.call("POST", PROFILE + ":consent", token=token,
                           json={"consent": False}).status_code in (401, 404)
    refused(shop.call("POST", f"/v1/staff/members/{member_id}:revealPhone", token=token,
                      json={"reason": "me"}), 401, "TOKEN_KIND")  # a member token is no staff's
    refused(shop.as_staff("GET", PROFILE), 401)  # a staff token is no member's
    assert profile(shop, token) == before


def test_an_owner_reveals_a_verified_phone_with_an_audit_entry_and_other_roles_are_denied(shop, stack):
    token, member_id = member(shop)
    reveal = f"/v1/staff/members/{member_id}:revealPhone"
    refused(shop.as_staff("POST", reveal, json={"reason": "call about delivery"}), 400, "MEMBER_PHONE_NOT_SET")
    phone = "139" + str(uuid.uuid4().int)[:8]
    ok(shop.call("POST", "/v1/me/phone/sms-code", token=token, json={"phone": phone}))
    sms = httpx.get(stack.wechat_url + "/_standin/sms", params={"phone": phone}, timeout=10).json()["messages"]
    code = "".join(ch for ch in sms[-1] if ch.isdigit())[:6]
    ok(shop.call("POST", "/v1/me/phone/sms", token=token, json={"phone": phone, "code": code}))
    masked = f"{phone[:3]}****{phone[-4:]}"
    assert profile(shop, token)["phone_masked"] == masked
    for role in ("GUIDE", "OPERATOR"):
        refused(shop.call("POST", reveal, channel=None, token=staff_with(shop, role),
                          json={"reason": "call about delivery"}), 403)
    assert not ok(shop.as_staff("GET", "/v1/staff/audit-entries",
                                params={"action": "MEMBER_PHONE_REVEALED", "target_id": member_id})).get("entries")
    assert ok(shop.as_staff("POST", reveal, json={"reason": "call about delivery"}))["phone"] == phone
    [entry] = ok(shop.as_staff("GET", "/v1/staff/audit-entries",
                               params={"action": "MEMBER_PHONE_REVEALED", "target_id": member_id}))["entries"]
    assert entry["after"] == {"reason": "call about delivery", "phone": masked}
    assert entry["actor_kind"] == "staff" and entry["actor_id"].startswith("stf_") and entry["created_at"]
    # The staff's member list shows it masked only.
    listed = ok(shop.as_staff("GET", "/v1/staff/members", params={"phone_suffix": phone[-4:]}))["members"]
    assert [m["phone_masked"] for m in listed if m["member_id"] == member_id] == [masked]
    assert phone not in str(listed)


def test_the_birthday_job_gives_the_tiers_coupon_once(stack, shop):
    template = active_template(shop, per_member_limit=5)
    config = ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"]
    levels = config["levels"]
    levels[0]["birthday_coupon_template_id"] = "cpt_01ARZ3NDEKTSV4RRFFQ69G5FAV"  # not the shop's
    resp = shop.as_staff("PUT", "/v1/staff/tier-config", json={"levels": levels,
                                                                "expected_version": config["version"]})
    refused(resp, 400, fields={"levels[0].birthday_coupon_template_id"})
    levels[0]["birthday_coupon_template_id"] = template["template_id"]
    saved = ok(shop.as_staff("PUT", "/v1/staff/tier-config", json={"levels": levels,
                                                                    "expected_version": config["version"]}))
    assert saved["config"]["levels"][0]["birthday_coupon_template_id"] == template["template_id"]
    token, _ = member(shop)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    ok(patch(shop, token, expected_version="1", birthday={"month": today.month, "day": today.day}))

    def birthday_coupons() -> list:
        coupons = ok(shop.call("GET", "/v1/me/coupons", token=token)).get("coupons", [])
        return [c for c in coupons if c["source"] == "COUPON_SOURCE_BIRTHDAY"]

    [coupon] = wait_until(birthday_coupons, message="the birthday coupon")
    assert coupon["template_id"] == template["template_id"]
    wait_job_runs(stack, "member", "member-birthday-benefit")  # whole runs after the coupon
    assert len(birthday_coupons()) == 1
