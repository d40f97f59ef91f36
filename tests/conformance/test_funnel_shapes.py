"""The query and update shapes of the funnel buckets and purchase facts
(services/content/adapters/funnel_store.py): the counting upsert guarded by generation and
mark, the duplicate key of a second upsert of a bucket it does not match, the mark check,
moving marks out (`$unset` of map entries with `$inc`), guard inserts, a day range of one
funnel, and the purchase facts' upserts, refund marks, earliest-first conditional update and
month and epoch-ms ranges."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from tests.support import new_merchant_id

from services.content.adapters import funnel_store as fs
from services.content.domain.cohorts import FirstPurchase
from services.content.domain.funnels import Counters


def _fields(merchant: str, day: str = "2026-06-01") -> dict:
    return {"merchant_id": merchant, "dimension": "live_session", "ref_id": "liv_1", "day": day, "currency": "CNY"}


@pytest.fixture
def guards(db, coll):
    guards = db[coll.name + "_g"]
    yield guards
    guards.drop()


def test_the_counting_upsert_creates_the_bucket_and_matches_nothing_for_a_counted_cause(coll):
    merchant = new_merchant_id()
    key = f"{merchant}:live_session:liv_1:2026-06-01"
    change = Counters(paid_orders=1, gmv=1999)
    result = coll.update_one(fs.count_query(key, 0, "evt_1"), fs.count_update(_fields(merchant), "evt_1", change),
                             upsert=True)
    assert result.upserted_id == key
    doc = coll.find_one({"_id": key})
    assert (doc["gen"], doc["marks_n"], doc["marks"], doc["paid_orders"], doc["gmv"]) == (0, 1, {"evt_1": 1}, 1, 1999)
    # The same cause again matches nothing; as an upsert, MongoDB then tries to insert the
    # bucket's _id once more and refuses it with a duplicate key.
    assert coll.update_one(fs.count_query(key, 0, "evt_1"), fs.count_update(_fields(merchant), "evt_1", change)
                           ).matched_count == 0
    with pytest.raises(DuplicateKeyError):
        coll.update_one(fs.count_query(key, 0, "evt_1"), fs.count_update(_fields(merchant), "evt_1", change),
                        upsert=True)
    # Another generation matches nothing either; a new cause on the right one adds up.
    assert coll.update_one(fs.count_query(key, 1, "evt_2"), fs.count_update(_fields(merchant), "evt_2", change)
                           ).matched_count == 0
    assert coll.update_one(fs.count_query(key, 0, "evt_2"), fs.count_update(
        _fields(merchant), "evt_2", Counters(paid_orders=-1, gmv=-500, refunds=1, refunded=500))).matched_count == 1
    doc = coll.find_one({"_id": key}, fs.COUNTER_PROJECTION)
    assert (doc["paid_orders"], doc["gmv"], doc["refunds"], doc["refunded"]) == (0, 1499, 1, 500)
    assert "marks" not in doc and doc["day"] == "2026-06-01"
    assert coll.find_one(fs.marked_query(key, "evt_2"), {"_id": 1}) == {"_id": key}
    assert coll.find_one(fs.marked_query(key, "evt_3"), {"_id": 1}) is None


def test_moving_marks_out_unsets_them_and_moves_the_generation(coll, guards):
    merchant = new_merchant_id()
    key = f"{merchant}:content:cnt_1:2026-06-01"
    for cause in ("evt_1", "v:mem_1", "c:click-1"):
        coll.update_one(fs.count_query(key, 0, cause), fs.count_update(_fields(merchant), cause, Counters(orders=1)),
                        upsert=True)
    assert coll.find_one({"_id": key}, {"gen": 1, "marks": 1})["marks"] == {"evt_1": 1, "v:mem_1": 1, "c:click-1": 1}
    assert coll.update_one({"_id": key, "gen": 0}, fs.settle_update(["evt_1", "v:mem_1"])).modified_count == 1
    doc = coll.find_one({"_id": key})
    assert (doc["marks"], doc["gen"], doc["marks_n"], doc["orders"]) == ({"c:click-1": 1}, 1, 1, 3)
    assert coll.update_one({"_id": key, "gen": 0}, fs.settle_update(["c:click-1"])).matched_count == 0
    guards.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    guards.insert_one({"_id": fs.guard_id(key, "evt_1"), "merchant_id": merchant,
                       "expires_at": datetime(2030, 1, 1, tzinfo=timezone.utc)})
    with pytest.raises(DuplicateKeyError):
        guards.insert_one({"_id": fs.guard_id(key, "evt_1"), "merchant_id": merchant})
    assert guards.find_one({"_id": fs.guard_id(key, "evt_1")}, {"_id": 1}) is not None
    assert guards.find_one({"_id": fs.guard_id(key, "v:mem_1")}, {"_id": 1}) is None


def test_counting_once_end_to_end_on_the_store(coll, guards):
    merchant = new_merchant_id()
    key = f"{merchant}:persona:per_1:2026-06-01"
    buckets = fs.Buckets(coll, guards, mark_limit=4)
    with ThreadPoolExecutor(max_workers=4) as pool:
        first = list(pool.map(lambda i: buckets.apply_once(key, _fields(merchant), f"evt_{i}", Counters(orders=1)),
                              range(10)))
    assert first == [True] * 10
    assert [buckets.apply_once(key, _fields(merchant), f"evt_{i}", Counters(orders=1)) for i in range(10)] == \
        [False] * 10
    doc = coll.find_one({"_id": key})
    # At most the limit: the apply that reaches it settles, unless a concurrent settle won
    # the generation first (then the marks wait for the next apply).
    assert doc["orders"] == 10 and len(doc["marks"]) <= 4 and doc["marks_n"] == len(doc["marks"])
    # A settle that lost to a concurrent one may have guarded a cause still marked: harmless.
    guarded = {g["_id"].split("|")[1] for g in guards.find({"merchant_id": merchant}, {"_id": 1})}
    assert guarded | set(doc["marks"]) == {f"evt_{i}" for i in range(10)}


def test_a_bucket_without_a_generation_gets_one(coll, guards):
    merchant = new_merchant_id()
    key = f"{merchant}:persona:per_1:2026-06-01"
    coll.insert_one({"_id": key, "merchant_id": merchant, "orders": 2, "seen": {"evt_0": 1}})
    assert coll.update_one({"_id": key, "marks_n": {"$exists": False}}, {"$set": {"gen": 0, "marks_n": 0}}
                           ).modified_count == 1
    assert coll.update_one({"_id": key, "marks_n": {"$exists": False}}, {"$set": {"gen": 0, "marks_n": 0}}
                           ).matched_count == 0
    assert fs.Buckets(coll, guards).apply_once(key, _fields(merchant), "evt_1", Counters(orders=1)) is True
    assert coll.find_one({"_id": key})["orders"] == 3


def test_a_funnels_days_by_a_range_of_day_strings(coll):
    coll.create_index([("merchant_id", ASCENDING), ("dimension", ASCENDING), ("ref_id", ASCENDING),
                       ("day", ASCENDING)])
    merchant, other = new_merchant_id(), new_merchant_id()
    for m, day in ((merchant, "2026-05-31"), (merchant, "2026-06-01"), (merchant, "2026-06-02"),
                   (merchant, "2026-06-03"), (other, "2026-06-02")):
        key = f"{m}:live_session:liv_1:{day}"
        coll.update_one(fs.count_query(key, 0, "evt_1"), fs.count_update(_fields(m, day), "evt_1", Counters(orders=1)),
                        upsert=True)
    found = sorted(d["day"] for d in coll.find(fs.range_query(merchant, "live_session", "liv_1", "2026-06-01",
                                                              "2026-06-02"), fs.COUNTER_PROJECTION))
    assert found == ["2026-06-01", "2026-06-02"]
    assert list(coll.find(fs.range_query(merchant, "persona", "liv_1", "2026-01-01", "2026-12-31"))) == []


def test_purchase_facts(coll):
    coll.create_index([("merchant_id", ASCENDING), ("paid_ms", ASCENDING)])
    merchant = new_merchant_id()
    # A refund that arrives before its order's payment creates the fact; the payment fills it.
    assert fs.upsert_retrying(coll, fs.refund_query(merchant, "ord_1", "rfd_1"),
                              fs.refund_update(merchant, "mem_1", "ord_1", "rfd_1", 300)) is True
    assert fs.upsert_retrying(coll, fs.refund_query(merchant, "ord_1", "rfd_1"),
                              fs.refund_update(merchant, "mem_1", "ord_1", "rfd_1", 300)) is False
    fs.upsert_retrying(coll, {"_id": fs.fact_id(merchant, "ord_1")},
                       fs.paid_update(merchant, "mem_1", "ord_1", 1_780_000_000_000, "2026-05", 1000))
    fs.upsert_retrying(coll, {"_id": fs.fact_id(merchant, "ord_1")},
                       fs.paid_update(merchant, "mem_1", "ord_1", 1_780_000_000_000, "2026-05", 1000))
    assert fs.upsert_retrying(coll, fs.refund_query(merchant, "ord_1", "rfd_2"),
                              fs.refund_update(merchant, "mem_1", "ord_1", "rfd_2", 200)) is True
    fs.upsert_retrying(coll, {"_id": fs.fact_id(merchant, "ord_2")},
                       fs.paid_update(merchant, "mem_1", "ord_2", 1_700_000_000_000, "2023-11", 50))
    doc = coll.find_one({"_id": fs.fact_id(merchant, "ord_1")})
    assert (doc["paid"], doc["refunded"], doc["refunds"], doc["month"]) == (1000, 500, {"rfd_1": 300, "rfd_2": 200},
                                                                            "2026-05")
    assert [d["order_id"] for d in coll.find(fs.facts_query(merchant, 1_750_000_000_000))] == ["ord_1"]
    assert coll.count_documents(fs.facts_query(merchant, 0)) == 2
    assert coll.count_documents(fs.facts_query(new_merchant_id(), 0)) == 0


def test_first_purchases_keep_the_earliest(coll):
    coll.create_index([("merchant_id", ASCENDING), ("month", ASCENDING)])
    merchant = new_merchant_id()
    later = FirstPurchase(member_id="mem_1", month="2026-06", channel="H5", persona_id="per_1")
    earlier = FirstPurchase(member_id="mem_1", month="2026-04", channel="LIVE", persona_id="")
    coll.insert_one(fs.first_doc(merchant, later, 2_000))
    with pytest.raises(DuplicateKeyError):
        coll.insert_one(fs.first_doc(merchant, earlier, 1_000))
    no_id = {k: v for k, v in fs.first_doc(merchant, earlier, 1_000).items() if k != "_id"}
    assert coll.update_one(fs.earlier_query(merchant, "mem_1", 1_000), {"$set": no_id}).modified_count == 1
    assert coll.update_one(fs.earlier_query(merchant, "mem_1", 3_000), {"$set": {"month": "2026-09"}}
                           ).matched_count == 0
    doc = coll.find_one({"_id": fs.fact_id(merchant, "mem_1")})
    assert (doc["month"], doc["channel"], doc["persona_id"], doc["paid_ms"]) == ("2026-04", "LIVE", "", 1_000)
    coll.insert_one(fs.first_doc(merchant, FirstPurchase("mem_2", "2026-07", "H5", ""), 5_000))
    coll.insert_one(fs.first_doc(new_merchant_id(), FirstPurchase("mem_3", "2026-05", "H5", ""), 5_000))
    assert sorted(d["member_id"] for d in coll.find(fs.cohort_query(merchant, "2026-04", "2026-06"))) == ["mem_1"]
    assert sorted(d["member_id"] for d in coll.find(fs.cohort_query(merchant, "2026-01", "2026-12"))) == [
        "mem_1", "mem_2"]


def test_forgetting_a_member_removes_their_first_purchase_and_order_facts(db, coll):
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)])
    firsts = db[coll.name + "_f"]
    merchant, other = new_merchant_id(), new_merchant_id()
    for m, order, member in ((merchant, "ord_1", "mem_1"), (merchant, "ord_2", "mem_1"), (merchant, "ord_3", "mem_2"),
                             (other, "ord_4", "mem_1")):
        fs.upsert_retrying(coll, {"_id": fs.fact_id(m, order)}, fs.paid_update(m, member, order, 1_000, "2026-05", 10))
        try:
            firsts.insert_one(fs.first_doc(m, FirstPurchase(member, "2026-05", "H5", ""), 1_000))
        except DuplicateKeyError:
            pass
    try:
        assert firsts.delete_one(fs.member_query(merchant, "mem_1", first=True)).deleted_count == 1
        assert firsts.delete_one(fs.member_query(other, "mem_2", first=True)).deleted_count == 0
        assert coll.delete_many(fs.member_query(merchant, "mem_1")).deleted_count == 2
        assert coll.delete_many(fs.member_query(merchant, "mem_1")).deleted_count == 0
        assert sorted(d["order_id"] for d in coll.find({})) == ["ord_3", "ord_4"]
        assert sorted(d["member_id"] for d in firsts.find({})) == ["mem_1", "mem_2"]
    finally:
        firsts.drop()
