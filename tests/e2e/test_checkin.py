"""Daily check-in over HTTP, as the member centre and the staff desk use it: many
simultaneous taps check in once and pay once (points available at once, growth added);
the calendar shows the day, the streak and what today and tomorrow pay; staff read and
change the cycle on its version. Every new route refuses bad input (400 with field
violations, nothing written), other merchants and the wrong roles."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from tests.support.member_centre import check_in
from tests.support.shop import Shop, ok, refused, staff_with

TAPS = 12
# The tests read the check-in settings as a new merchant has them (version 0, the default cycle).
SHOP_PER_TEST = True


def member(shop: Shop) -> tuple[str, str]:
    done = shop.login("chk-" + uuid.uuid4().hex[:10])
    return done["access_token"], done["member"]["member_id"]


def points(shop: Shop, token: str) -> dict:
    return ok(shop.call("GET", "/v1/me/points", token=token))


def settings_now(shop: Shop) -> dict:
    return ok(shop.as_staff("GET", "/v1/staff/checkin-settings"))


def test_a_double_tap_from_many_devices_checks_in_once_and_pays_once(shop):
    token, member_id = member(shop)
    with ThreadPoolExecutor(max_workers=TAPS) as pool:
        answers = [ok(r) for r in pool.map(lambda _: check_in(shop, token), range(TAPS))]
    assert sum(not a["repeat"] for a in answers) == 1
    days = {(a["check_in"]["day"], a["check_in"]["points"], a["check_in"]["streak"]) for a in answers}
    assert len(days) == 1 and next(iter(days))[1:] == ("10", 1)
    # Points are available at once, from one check-in entry; growth grew by one.
    mine = points(shop, token)
    assert (int(mine["balance"]), int(mine["available"]), int(mine["frozen"])) == (10, 10, 0)
    assert [(e["source"], e["kind"]) for e in mine["entries"]] == [("POINTS_SOURCE_CHECK_IN",
                                                                     "POINTS_MOVEMENT_CHECK_IN")]
    assert int(ok(shop.call("GET", "/v1/me", token=token))["member"]["growth_value"]) == 1
    staff = ok(shop.as_staff("GET", f"/v1/staff/members/{member_id}/points"))
    assert staff["audit"]["consistent"] is True
    # Another tap later is a repeat answering the same day.
    again = ok(check_in(shop, token))
    assert again["repeat"] is True and again["check_in"]["day"] == answers[0]["check_in"]["day"]
    assert int(points(shop, token)["balance"]) == 10

    page = ok(shop.call("GET", "/v1/me/check-ins", token=token))
    today = answers[0]["check_in"]["day"]
    assert (page["today"], page["month"], page["checked_in_today"], page["streak"]) == (today, today[:7], True, 1)
    assert (page["today_points"], page["tomorrow_points"]) == ("10", "20")
    assert [c["day"] for c in page["check_ins"]] == [today]
    assert page["settings"]["day_rewards"] == ["10", "20", "30", "40", "50", "60", "70"]
    same = ok(shop.call("GET", "/v1/me/check-ins", token=token, params={"month": today[:7]}))
    assert same["check_ins"] == page["check_ins"]
    earlier = ok(shop.call("GET", "/v1/me/check-ins", token=token, params={"month": "2001-01"}))
    assert earlier["month"] == "2001-01" and earlier["check_ins"] == []


def test_staff_change_the_cycle_on_its_version_and_the_next_check_in_pays_it(shop):
    current = settings_now(shop)
    assert current["version"] == "0" and current["settings"]["growth"] == "1"
    changed = ok(shop.as_staff("PUT", "/v1/staff/checkin-settings", json={
        "settings": {"day_rewards": ["5", "15"], "growth": "3"}, "expected_version": "0"}))
    assert changed["version"] == "1"
    refused(shop.as_staff("PUT", "/v1/staff/checkin-settings", json={
        "settings": {"day_rewards": ["1"], "growth": "0"}, "expected_version": "0"}), 409, "VERSION_CONFLICT")
    assert settings_now(shop) == changed
    token, _ = member(shop)
    done = ok(check_in(shop, token))["check_in"]
    assert (done["points"], done["growth"], done["cycle_day"]) == ("5", "3", 1)
    page = ok(shop.call("GET", "/v1/me/check-ins", token=token))
    assert (page["today_points"], page["tomorrow_points"]) == ("5", "15")
    assert int(ok(shop.call("GET", "/v1/me", token=token))["member"]["growth_value"]) == 3
    audit = ok(shop.as_staff("GET", "/v1/staff/audit-entries", params={"action": "CHECKIN_SETTINGS_UPDATED"}))
    assert len(audit["entries"]) == 1


def test_bad_input_is_refused_with_field_violations_and_nothing_written(shop):
    before = settings_now(shop)
    bad = refused(shop.as_staff("PUT", "/v1/staff/checkin-settings", json={
        "settings": {"day_rewards": [], "growth": "-1"}, "expected_version": "-1"}), 400)
    assert {v["field"] for v in bad["field_violations"]} >= {"settings.day_rewards", "settings.growth",
                                                              "expected_version"}
    refused(shop.as_staff("PUT", "/v1/staff/checkin-settings", json={
        "settings": {"day_rewards": ["10"] * 32, "growth": "1"}, "expected_version": "0"}), 400,
        fields={"settings.day_rewards"})
    refused(shop.as_staff("PUT", "/v1/staff/checkin-settings", json={
        "settings": {"day_rewards": ["10", "-5"], "growth": "1"}, "expected_version": "0"}), 400,
        fields={"settings.day_rewards[1]"})
    refused(shop.as_staff("PUT", "/v1/staff/checkin-settings", json={"expected_version": "0"}), 400,
            fields={"settings"})
    assert settings_now(shop) == before
    token, _ = member(shop)
    for month in ("2026-13", "26-01", "2026-1", "1800-01"):
        refused(shop.call("GET", "/v1/me/check-ins", token=token, params={"month": month}), 400, fields={"month"})
    page = ok(shop.call("GET", "/v1/me/check-ins", token=token))
    assert page["checked_in_today"] is False and page["check_ins"] == [] and page["streak"] == 0
    assert int(points(shop, token).get("balance", 0)) == 0


def test_wrong_roles_and_callers_are_denied(shop):
    for role in ("FINANCE", "GUIDE"):
        staff = staff_with(shop, role)
        assert shop.call("GET", "/v1/staff/checkin-settings", channel=None, token=staff).status_code == 403
        assert shop.call("PUT", "/v1/staff/checkin-settings", channel=None, token=staff, json={
            "settings": {"day_rewards": ["1"], "growth": "0"}, "expected_version": "0"}).status_code == 403
    assert settings_now(shop)["version"] == "0"
    token, _ = member(shop)
    assert shop.call("GET", "/v1/staff/checkin-settings", token=token).status_code in (401, 403)
    # Check-in is the member's own: no token, or a staff token, cannot check in.
    refused(shop.call("POST", "/v1/me/check-ins", json={}), 401)
    refused(shop.call("GET", "/v1/me/check-ins"), 401)
    assert shop.as_staff("POST", "/v1/me/check-ins", json={}).status_code in (401, 403)


def test_other_merchants_see_and_change_nothing(shop, other_shop):
    # The same person at two shops: a check-in at one is not one at the other.
    unionid = "chk-both-" + uuid.uuid4().hex[:8]
    here = shop.login(unionid)["access_token"]
    there = other_shop.login(unionid)["access_token"]
    assert ok(check_in(shop, here))["repeat"] is False
    theirs = ok(other_shop.call("GET", "/v1/me/check-ins", token=there))
    assert theirs["checked_in_today"] is False and theirs["check_ins"] == []
    assert int(points(other_shop, there).get("balance", 0)) == 0
    # A member token of one shop is refused by the other shop's channel key.
    assert other_shop.call("POST", "/v1/me/check-ins", token=here, json={}).status_code in (401, 403, 404)
    # Staff of the other shop change only their own settings.
    ok(other_shop.as_staff("PUT", "/v1/staff/checkin-settings", json={
        "settings": {"day_rewards": ["1"], "growth": "0"}, "expected_version": "0"}))
    assert settings_now(shop)["version"] == "0"
    assert settings_now(shop)["settings"]["day_rewards"][0] == "10"
