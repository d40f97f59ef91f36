"""The storage shapes of community group buy (services/order/adapters/community_store.py):
leaders unique per member and paged by state, campaigns by cut-off, orders found by their
activity's nested fields, the per-member limit moved by one conditional $inc after an
insert, pickup codes unique by _id, batches whose order list is replaced whole on their
version and closed by a guarded update."""
from __future__ import annotations

from datetime import datetime, timezone

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.protos import aware
from siyu_kit.repository import insert_new


def test_leaders_are_unique_per_member_and_paged_by_state(coll):
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)], unique=True)
    coll.create_index([("merchant_id", ASCENDING), ("state", ASCENDING)])
    point = {"pickup_point_id": "pkp_1", "name": "店", "region_code": "440305", "detail": "路 1 号",
             "opening_hours": "9-21", "capacity_per_day": 200, "phone_sealed": "v1.k.n.b"}
    for i, state in enumerate(["APPROVED", "PENDING", "APPROVED", "APPROVED"]):
        assert insert_new(coll, {"_id": f"cld_{i}", "merchant_id": "mch_a", "member_id": f"mem_{i}",
                                 "pickup_point": point, "state": state, "enabled": 1, "version": 1})
    assert not insert_new(coll, {"_id": "cld_9", "merchant_id": "mch_a", "member_id": "mem_0", "state": "PENDING"})
    assert insert_new(coll, {"_id": "cld_8", "merchant_id": "mch_b", "member_id": "mem_0", "state": "APPROVED"})
    page = list(coll.find({"merchant_id": "mch_a", "state": "APPROVED", "_id": {"$gt": "cld_0"}})
                .sort("_id", ASCENDING).limit(2))
    assert [d["_id"] for d in page] == ["cld_2", "cld_3"]
    assert coll.find_one({"merchant_id": "mch_a", "member_id": "mem_1"})["pickup_point"] == point
    changed = coll.update_one({"_id": "cld_1", "merchant_id": "mch_a", "version": 1},
                              {"$set": {"state": "APPROVED", "enabled": 0, "reject_reason": "", "name": "新",
                                        "pickup_point": {**point, "detail": "路 2 号"}}, "$inc": {"version": 1}})
    stale = coll.update_one({"_id": "cld_1", "merchant_id": "mch_a", "version": 1}, {"$set": {"state": "REJECTED"}})
    assert (changed.modified_count, stale.modified_count) == (1, 0)
    assert coll.find_one({"_id": "cld_1"})["enabled"] == 0
    assert coll.find_one({"_id": "cld_1"})["pickup_point"] == {**point, "detail": "路 2 号"}


def test_campaigns_by_cut_off_open_and_due_and_closed_once(coll):
    coll.create_index([("merchant_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True)
    coll.create_index([("closed", ASCENDING), ("cut_off_ms", ASCENDING)])
    for i, cut in enumerate([3000, 1000, 2000]):
        assert insert_new(coll, {"_id": f"cmp_{i}", "merchant_id": "mch_a", "idempotency_key": f"k{i}",
                                 "cut_off_ms": cut, "closed": 0, "version": 1,
                                 "lines": [{"sku_id": "sku_1", "price": 800, "list_price": 1000}]})
    assert not insert_new(coll, {"_id": "cmp_9", "merchant_id": "mch_a", "idempotency_key": "k0"})
    open_now = list(coll.find({"merchant_id": "mch_a", "cut_off_ms": {"$gt": 1500}}).sort("cut_off_ms", ASCENDING))
    assert [d["_id"] for d in open_now] == ["cmp_2", "cmp_0"]
    due = list(coll.find({"closed": 0, "cut_off_ms": {"$lte": 2000}}).sort("cut_off_ms", ASCENDING).limit(10))
    assert [d["_id"] for d in due] == ["cmp_1", "cmp_2"]
    at = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    first = coll.update_one({"_id": "cmp_1", "merchant_id": "mch_a", "version": 1},
                            {"$set": {"closed": 1, "closed_at": at}, "$inc": {"version": 1}})
    second = coll.update_one({"_id": "cmp_1", "merchant_id": "mch_a", "version": 1},
                             {"$set": {"closed": 1, "closed_at": at}, "$inc": {"version": 1}})
    assert (first.modified_count, second.modified_count) == (1, 0)
    assert [d["_id"] for d in coll.find({"closed": 0, "cut_off_ms": {"$lte": 2000}})] == ["cmp_2"]
    assert aware(coll.find_one({"_id": "cmp_1"})["closed_at"]) == at


def test_orders_are_found_by_their_activitys_nested_fields(coll):
    coll.create_index([("merchant_id", ASCENDING), ("activity.activity_id", ASCENDING),
                       ("activity.leader_id", ASCENDING)])
    rows = [("ord_1", "cmp_a", "cld_1", "PAID", "11111111"), ("ord_2", "cmp_a", "cld_1", "PENDING_PAYMENT", "22222222"),
            ("ord_3", "cmp_a", "cld_2", "PAID", "33333333"), ("ord_4", "cmp_b", "cld_1", "PAID", "11111111")]
    for oid, cmp, leader, state, code in rows:
        coll.insert_one({"_id": oid, "merchant_id": "mch_a", "state": state,
                         "activity": {"kind": "COMMUNITY", "activity_id": cmp, "leader_id": leader,
                                      "pickup_point_id": "pkp_1", "pickup_code": code}})
    coll.insert_one({"_id": "ord_5", "merchant_id": "mch_a", "state": "PAID"})  # no activity
    batch = coll.find({"merchant_id": "mch_a", "activity.activity_id": "cmp_a", "activity.leader_id": "cld_1",
                       "state": {"$in": ["PAID", "SHIPPED", "DELIVERED", "COMPLETED"]}}).sort("_id", ASCENDING)
    assert [d["_id"] for d in batch] == ["ord_1"]
    campaign = coll.find({"merchant_id": "mch_a", "activity.activity_id": "cmp_a", "state": {"$in": ["PAID"]}})
    assert sorted(d["_id"] for d in campaign) == ["ord_1", "ord_3"]
    by_code = list(coll.find({"merchant_id": "mch_a", "activity.activity_id": "cmp_a", "activity.leader_id": "cld_1",
                              "activity.pickup_code": "11111111"}))
    assert [d["_id"] for d in by_code] == ["ord_1"]
    assert coll.find_one({"_id": "ord_1"})["activity"]["pickup_code"] == "11111111"


def test_the_per_member_limit_is_one_conditional_inc_after_an_insert(coll):
    key = "mch_a:cmp_a:mem_1:sku_1"

    def take(units: int, limit: int) -> bool:
        insert_new(coll, {"_id": key, "merchant_id": "mch_a", "units": 0})
        return coll.update_one({"_id": key, "units": {"$lte": limit - units}},
                               {"$inc": {"units": units}}).modified_count == 1

    assert take(2, 3) and not take(2, 3) and take(1, 3) and not take(1, 3)
    back = coll.update_one({"_id": key, "units": {"$gte": 2}}, {"$inc": {"units": -2}})
    assert back.modified_count == 1 and coll.find_one({"_id": key})["units"] == 1


def test_a_pickup_code_is_claimed_once_by_its_id(coll):
    assert insert_new(coll, {"_id": "mch_a:cmp_a:cld_1:12345678", "merchant_id": "mch_a", "order_id": "ord_1"})
    assert not insert_new(coll, {"_id": "mch_a:cmp_a:cld_1:12345678", "merchant_id": "mch_a", "order_id": "ord_2"})
    assert insert_new(coll, {"_id": "mch_a:cmp_a:cld_2:12345678", "merchant_id": "mch_a", "order_id": "ord_3"})
    try:
        coll.insert_one({"_id": "mch_a:cmp_a:cld_1:12345678"})
        raise AssertionError("a duplicate _id was accepted")
    except DuplicateKeyError:
        pass


def test_a_batch_grows_on_its_version_and_its_rule_closes_only_on_the_version_read(coll):
    coll.create_index([("uncollected_open", ASCENDING), ("delivered_ms", ASCENDING)])
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    for i, ms in enumerate([2000, 1000]):
        assert insert_new(coll, {"_id": f"b{i}", "merchant_id": "mch_a", "campaign_id": "cmp_a", "leader_id": f"cld_{i}",
                                 "delivered_at": at, "delivered_ms": ms, "order_ids": ["ord_1"],
                                 "uncollected_open": 1, "version": 1})
    grown = coll.update_one({"_id": "b0", "merchant_id": "mch_a", "version": 1},
                            {"$set": {"order_ids": ["ord_1", "ord_2"], "uncollected_open": 1}, "$inc": {"version": 1}})
    assert grown.modified_count == 1 and coll.find_one({"_id": "b0"})["order_ids"] == ["ord_1", "ord_2"]
    assert [d["_id"] for d in coll.find({"uncollected_open": 1}).sort("delivered_ms", ASCENDING).limit(10)] == \
        ["b1", "b0"]
    stale = coll.update_one({"_id": "b0", "uncollected_open": 1, "version": 1},
                            {"$set": {"uncollected_open": 0}, "$inc": {"version": 1}})
    done = coll.update_one({"_id": "b0", "uncollected_open": 1, "version": 2},
                           {"$set": {"uncollected_open": 0}, "$inc": {"version": 1}})
    assert (stale.modified_count, done.modified_count) == (0, 1)
    assert [d["_id"] for d in coll.find({"uncollected_open": 1})] == ["b1"]
    assert aware(coll.find_one({"_id": "b1"})["delivered_at"]) == at


def test_the_uncollected_rule_reads_back_per_merchant(coll):
    coll.update_one({"_id": "mch_a"}, {"$set": {"uncollected_days": 0, "uncollected_action": "KEEP"}}, upsert=True)
    coll.update_one({"_id": "mch_a"}, {"$set": {"uncollected_days": 3, "uncollected_action": "REFUND"}}, upsert=True)
    doc = coll.find_one({"_id": "mch_a"})
    assert (doc["uncollected_days"], doc["uncollected_action"]) == (3, "REFUND") and coll.count_documents({}) == 1


def test_an_orders_referral_keeps_its_community_leader(coll):
    from services.order.adapters.documents import referral_doc, referral_of
    from services.order.domain.commissions import Referral
    referral = Referral(community_leader_id="mem_L", community_leader_rate_bp=1000)
    coll.insert_one({"_id": "ord_1", "merchant_id": "mch_a", "referral": referral_doc(referral)})
    assert referral_of(coll.find_one({"_id": "ord_1"})["referral"]) == referral
