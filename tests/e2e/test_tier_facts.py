"""A tier change through growth reaches the member's segment facts at the facts job's next
run: a check-in's growth lifts a member to SILVER (the shop's thresholds set low), their
statistics are marked due (a member with no order has statistics only because of the
mark) and a segment on tier counts them."""
from __future__ import annotations

import uuid

from pymongo import MongoClient

from siyu_kit import config
from tests.support import wait_until
from tests.support.shop import ok


def stats_doc(stack, merchant_id: str, member_id: str) -> dict | None:
    client = MongoClient(stack.mongodb_uri, tz_aware=True)
    try:
        return client[config.load("member").mongodb_db]["member_stats"].find_one({"_id": f"{merchant_id}:{member_id}"})
    finally:
        client.close()


def silver_count(shop) -> int:
    rule = {"conditions": [{"field": "tier", "op": "in", "values": ["SILVER"]}]}
    return int(ok(shop.as_staff("POST", "/v1/staff/segments:preview", json={"rule": rule})).get("member_count", 0))


def test_a_check_in_that_lifts_the_tier_reaches_a_segment_on_tier(shop, stack):
    current = ok(shop.as_staff("GET", "/v1/staff/tier-config"))["config"]
    levels = [{**level, "threshold": str(threshold)}
              for level, threshold in zip(current["levels"], (0, 1, 500, 5000))]
    ok(shop.as_staff("PUT", "/v1/staff/tier-config", json={"levels": levels,
                                                             "expected_version": current["version"]}))
    login = shop.login("tier-facts-" + uuid.uuid4().hex[:10])
    token, member_id = login["access_token"], login["member"]["member_id"]
    assert silver_count(shop) == 0
    ok(shop.call("POST", "/v1/me/check-ins", token=token, json={}))  # growth 1: SILVER
    assert ok(shop.call("GET", "/v1/me/tier", token=token))["tier"] == "TIER_SILVER"
    wait_until(lambda: stats_doc(stack, shop.data["merchant_id"], member_id), message="the member's facts marked")
    wait_until(lambda: silver_count(shop) == 1, message="the segment on tier counts the member")
