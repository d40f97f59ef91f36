"""The storage shapes of bargains (services/order/adapters/bargain_store.py): the help
written as the whole helps array of sub-documents by `$set` on the version (never `$push`),
the open bargain's sparse unique key, the help counters (insert, then a conditional `$inc`),
the expiry scan on epoch milliseconds, and the keyset-paged lists."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from services.order.adapters.bargain_store import _helps_doc, bargain_of
from services.order.domain.bargains import Help

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
MS = int(T0.timestamp() * 1000)


def bargain_doc(_id: str, **over) -> dict:
    doc = {"_id": _id, "merchant_id": "mch_a", "version": 1, "activity_id": "bga_1", "member_id": "mem_s",
           "sku_id": "sku_1", "start_price": 10_000, "floor_price": 1_000, "seed": 2 ** 47 + 5,
           "cuts": [4000, 3000, 2000], "state": "ACTIVE", "started_ms": MS, "expires_at": T0 + timedelta(days=1),
           "expires_ms": MS + 86_400_000, "attribution": {"channel": "H5", "persona_id": "", "share_code": "s"},
           "helps": [], "buy_before_floor": 0, "order_id": "", "open_key": f"mch_a:bga_1:{_id}"}
    doc.update(over)
    return doc


def test_a_help_replaces_the_helps_array_on_the_version_and_reads_back(coll):
    coll.insert_one(bargain_doc("bgn_1"))
    helps = (Help("mem_a", "张**", 4000, T0), Help("mem_b", "a****", 3000, T0 + timedelta(seconds=1)))
    done = coll.update_one({"_id": "bgn_1", "merchant_id": "mch_a", "version": 1},
                           {"$set": {"state": "ACTIVE", "helps": _helps_doc(helps[:1]), "order_id": "",
                                     "finished_ms": 0}, "$inc": {"version": 1}})
    assert done.modified_count == 1
    done = coll.update_one({"_id": "bgn_1", "merchant_id": "mch_a", "version": 2},
                           {"$set": {"state": "SUCCEEDED", "helps": _helps_doc(helps)}, "$inc": {"version": 1}})
    assert done.modified_count == 1
    b = bargain_of(coll.find_one({"_id": "bgn_1"}))
    assert b.helps == helps and b.version == 3 and b.state.value == "SUCCEEDED" and b.price == 3000
    assert b.seed == 2 ** 47 + 5 and b.cuts == (4000, 3000, 2000)


def test_of_many_helps_on_one_version_exactly_one_wins(coll):
    coll.insert_one(bargain_doc("bgn_1", version=7))
    wins: list[int] = []
    start = threading.Barrier(8)

    def write(i: int) -> None:
        start.wait()
        done = coll.update_one({"_id": "bgn_1", "merchant_id": "mch_a", "version": 7},
                               {"$set": {"helps": _helps_doc([Help(f"mem_{i}", "", 4000, T0)])},
                                "$inc": {"version": 1}})
        wins.append(done.modified_count)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [0] * 7 + [1]
    assert len(coll.find_one({"_id": "bgn_1"})["helps"]) == 1


def test_the_open_key_is_unique_while_set_and_free_once_unset(coll):
    coll.create_index([("open_key", ASCENDING)], unique=True, sparse=True)
    coll.insert_one(bargain_doc("bgn_1", open_key="mch_a:bga_1:mem_s"))
    with pytest.raises(DuplicateKeyError):
        coll.insert_one(bargain_doc("bgn_2", open_key="mch_a:bga_1:mem_s"))
    done = coll.update_one({"_id": "bgn_1", "merchant_id": "mch_a", "version": 1},
                           {"$set": {"state": "FAILED"}, "$unset": {"open_key": ""}, "$inc": {"version": 1}})
    assert done.modified_count == 1
    coll.insert_one(bargain_doc("bgn_2", open_key="mch_a:bga_1:mem_s"))
    # Closed bargains (no open key) of the same member coexist.
    coll.update_one({"_id": "bgn_2"}, {"$unset": {"open_key": ""}})
    coll.insert_one(bargain_doc("bgn_3", open_key="mch_a:bga_1:mem_s"))
    assert coll.find_one({"open_key": "mch_a:bga_1:mem_s"})["_id"] == "bgn_3"
    assert "open_key" not in coll.find_one({"_id": "bgn_1"})


def test_a_help_counter_is_inserted_empty_then_taken_below_its_limit_and_given_back(coll):
    def take(limit: int) -> bool:
        try:
            coll.insert_one({"_id": "mch_a:bga_1:mem_h", "merchant_id": "mch_a", "n": 0})
        except DuplicateKeyError:
            pass
        return coll.update_one({"_id": "mch_a:bga_1:mem_h", "n": {"$lt": limit}},
                               {"$inc": {"n": 1}}).modified_count == 1

    assert [take(2) for _ in range(3)] == [True, True, False]
    coll.update_one({"_id": "mch_a:bga_1:mem_h", "n": {"$gt": 0}}, {"$inc": {"n": -1}})
    assert take(2) is True and coll.find_one({"_id": "mch_a:bga_1:mem_h"})["n"] == 2
    for _ in range(4):
        coll.update_one({"_id": "mch_a:bga_1:mem_h", "n": {"$gt": 0}}, {"$inc": {"n": -1}})
    assert coll.find_one({"_id": "mch_a:bga_1:mem_h"})["n"] == 0


def test_racing_takes_of_one_counter_never_pass_the_limit(coll):
    start = threading.Barrier(10)
    took: list[bool] = []

    def take() -> None:
        start.wait()
        try:
            coll.insert_one({"_id": "k", "merchant_id": "mch_a", "n": 0})
        except DuplicateKeyError:
            pass
        took.append(coll.update_one({"_id": "k", "n": {"$lt": 3}}, {"$inc": {"n": 1}}).modified_count == 1)

    threads = [threading.Thread(target=take) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert took.count(True) == 3 and coll.find_one({"_id": "k"})["n"] == 3


def test_the_expiry_scan_finds_open_bargains_due_by_epoch_milliseconds(coll):
    coll.create_index([("state", ASCENDING), ("expires_ms", ASCENDING)])
    coll.insert_many([
        bargain_doc("bgn_1", expires_ms=MS - 1, open_key="a"),
        bargain_doc("bgn_2", expires_ms=MS, state="SUCCEEDED", open_key="b"),
        bargain_doc("bgn_3", expires_ms=MS + 1, open_key="c"),
        bargain_doc("bgn_4", expires_ms=MS - 5, state="ORDERED", open_key="d"),
        bargain_doc("bgn_5", expires_ms=MS - 5, state="FAILED", open_key="e"),
    ])
    due = coll.find({"state": {"$in": ["ACTIVE", "SUCCEEDED"]}, "expires_ms": {"$lte": MS}}).limit(100)
    assert sorted(d["_id"] for d in due) == ["bgn_1", "bgn_2"]


def test_a_members_bargains_are_paged_newest_first_by_id(coll):
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)])
    coll.insert_many([bargain_doc(f"bgn_{i}", member_id="mem_s" if i % 2 else "mem_t", open_key=f"k{i}")
                      for i in range(1, 8)])
    first = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "member_id": "mem_s"})
             .sort("_id", DESCENDING).limit(2)]
    assert first == ["bgn_7", "bgn_5"]
    rest = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "member_id": "mem_s", "_id": {"$lt": "bgn_5"}})
            .sort("_id", DESCENDING).limit(2)]
    assert rest == ["bgn_3", "bgn_1"]


def test_open_activities_are_listed_by_their_window_in_epoch_milliseconds(coll):
    coll.create_index([("merchant_id", ASCENDING), ("key", ASCENDING)], unique=True)
    rows = [("bga_1", "ACTIVE", MS - 10, MS + 10), ("bga_2", "ACTIVE", MS + 1, MS + 10),
            ("bga_3", "ENDED", MS - 10, MS + 10), ("bga_4", "ACTIVE", MS - 10, MS), ("bga_5", "ACTIVE", MS, MS + 1)]
    coll.insert_many([{"_id": i, "merchant_id": "mch_a", "key": i, "state": s, "starts_ms": a, "ends_ms": b}
                      for i, s, a, b in rows])
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "bga_9", "merchant_id": "mch_a", "key": "bga_1"})
    found = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "state": "ACTIVE", "starts_ms": {"$lte": MS},
                                          "ends_ms": {"$gt": MS}}).sort("_id", DESCENDING).limit(20)]
    assert found == ["bga_5", "bga_1"]
    # A window changed later is written as integers too, and the range still holds.
    coll.update_one({"_id": "bga_1"}, {"$set": {"ends_ms": MS - 1}})
    found = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "state": "ACTIVE", "starts_ms": {"$lte": MS},
                                          "ends_ms": {"$gt": MS}, "_id": {"$lt": "bga_9"}})
             .sort("_id", DESCENDING).limit(20)]
    assert found == ["bga_5"]
