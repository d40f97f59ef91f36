"""The query and update shapes of the staff administration lists (staff users, channel
keys, audit entries): newest first by id with an `$lt` cursor, an anchored escaped prefix,
`$nin: [1]` on a flag some documents lack (the embedded store does not match a missing
field with `$ne` in an update), and a flag set once by a guarded update."""
from __future__ import annotations

import re

from pymongo import DESCENDING

from siyu_kit.ids import new_id
from tests.support import new_merchant_id


def test_newest_first_with_an_escaped_prefix_a_missing_flag_and_an_lt_cursor(coll):
    merchant, other = new_merchant_id(), new_merchant_id()
    ids = [new_id("stf") for _ in range(5)]
    coll.insert_many([
        {"_id": ids[0], "merchant_id": merchant, "username": "guide.1"},  # no flag at all: an old document
        {"_id": ids[1], "merchant_id": merchant, "username": "guide.2", "disabled": 0},
        {"_id": ids[2], "merchant_id": merchant, "username": "guide.3", "disabled": 1},
        {"_id": ids[3], "merchant_id": merchant, "username": "guideX4", "disabled": 0},
        {"_id": ids[4], "merchant_id": other, "username": "guide.5", "disabled": 0},
    ])
    query = {"merchant_id": merchant, "username": {"$regex": "^" + re.escape("guide.")}, "disabled": {"$nin": [1]}}
    first = [d["_id"] for d in coll.find(query).sort("_id", DESCENDING).limit(1)]
    assert first == [ids[1]]
    rest = [d["_id"] for d in coll.find({**query, "_id": {"$lt": first[-1]}}).sort("_id", DESCENDING).limit(5)]
    assert rest == [ids[0]]
    everyone = coll.find({"merchant_id": merchant}).sort("_id", DESCENDING).limit(10)
    assert [d["_id"] for d in everyone] == ids[3::-1]


def test_a_flag_set_once_by_an_update_guarded_on_nin_and_maps_round_trip(coll):
    merchant = new_merchant_id()
    kid = new_id("key")
    coll.insert_one({"_id": kid, "merchant_id": merchant, "channel": "H5", "key_hash": "h" + kid,
                     "before": {"channel": "H5", "key": "sk_h5_…abcd"}, "after": {}})
    guard = {"_id": kid, "merchant_id": merchant, "disabled": {"$nin": [1]}}
    assert coll.update_one(guard, {"$set": {"disabled": 1}}).modified_count == 1
    assert coll.update_one(guard, {"$set": {"disabled": 1}}).modified_count == 0
    assert coll.update_one({**guard, "merchant_id": new_merchant_id()}, {"$set": {"disabled": 1}}).matched_count == 0
    found = coll.find_one({"_id": kid, "merchant_id": merchant})
    assert found["disabled"] == 1 and found["before"] == {"channel": "H5", "key": "sk_h5_…abcd"}
    assert found["after"] == {}


def test_growth_raised_to_a_sum_only_upwards_and_set_when_absent(coll):
    merchant = new_merchant_id()
    old, new = new_id("mem"), new_id("mem")
    coll.insert_many([{"_id": old, "merchant_id": merchant}, {"_id": new, "merchant_id": merchant, "growth": 0}])
    for member, total in ((old, 120), (new, 300), (new, 200)):
        key = {"_id": member, "merchant_id": merchant}
        coll.update_one({**key, "growth": {"$exists": False}}, {"$set": {"growth": total}})
        coll.update_one({**key, "growth": {"$lt": total}}, {"$set": {"growth": total}})
    assert {d["_id"]: d["growth"] for d in coll.find({"merchant_id": merchant})} == {old: 120, new: 300}


def test_member_search_by_suffix_prefix_growth_range_and_time_range_newest_first(coll):
    from datetime import datetime, timedelta, timezone

    merchant = new_merchant_id()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ids = [new_id("mem") for _ in range(4)]
    coll.insert_many([
        {"_id": ids[0], "merchant_id": merchant, "nickname": "amy", "phone_suffix": "1234", "growth": 0,
         "created_at": start},
        {"_id": ids[1], "merchant_id": merchant, "nickname": "anna", "phone_suffix": "5678", "growth": 1500,
         "created_at": start + timedelta(days=1)},
        {"_id": ids[2], "merchant_id": merchant, "nickname": "a.b", "growth": 5000, "created_at": start + timedelta(days=2)},
        {"_id": ids[3], "merchant_id": new_merchant_id(), "nickname": "anna", "phone_suffix": "5678", "growth": 1500,
         "created_at": start},
    ])

    def find(**query):
        return [d["_id"] for d in coll.find({"merchant_id": merchant, **query}).sort("_id", DESCENDING).limit(10)]

    assert find(phone_suffix="5678") == [ids[1]]
    assert find(nickname={"$regex": "^" + re.escape("a.")}) == [ids[2]]
    assert find(growth={"$gte": 1000, "$lt": 5000}) == [ids[1]]
    assert find(growth={"$lt": 1000}) == [ids[0]]
    assert find(created_at={"$gte": start + timedelta(days=1), "$lt": start + timedelta(days=2)}) == [ids[1]]
    assert find(nickname={"$regex": "^a"}, _id={"$lt": ids[2]}) == [ids[1], ids[0]]


def test_backfill_lease_set_on_insert_then_taken_only_by_its_holder_or_once_run_out(coll):
    """BackfillProgressRepository: the progress document made once, the lease (epoch ms)
    renewed by its holder or taken when it ran out, the checkpoint written only by the holder."""
    for _ in range(2):
        coll.update_one({"_id": "growth"}, {"$setOnInsert": {"after_id": "", "done": 0, "holder": "",
                                                              "lease_until_ms": 0}}, upsert=True)
    assert coll.count_documents({}) == 1

    def take(holder, now_ms):
        for query in ({"_id": "growth", "done": {"$nin": [1]}, "holder": holder},
                      {"_id": "growth", "done": {"$nin": [1]}, "lease_until_ms": {"$lt": now_ms}}):
            if coll.update_one(query, {"$set": {"holder": holder, "lease_until_ms": now_ms + 60_000}}
                               ).matched_count == 1:
                return True
        return False

    t0 = 1_767_225_600_000
    assert take("a", t0) and not take("b", t0 + 30_000) and take("a", t0 + 30_000)
    assert coll.update_one({"_id": "growth", "holder": "a"}, {"$set": {"after_id": "mem_5"}}).matched_count == 1
    assert coll.update_one({"_id": "growth", "holder": "b"}, {"$set": {"after_id": "mem_9"}}).matched_count == 0
    assert take("b", t0 + 91_000)
    assert coll.find_one({"_id": "growth"}, {"after_id": 1}) == {"_id": "growth", "after_id": "mem_5"}
    coll.update_one({"_id": "growth", "holder": "b"}, {"$set": {"done": 1}})
    assert not take("b", t0 + 92_000) and not take("c", t0 + 86_400_000)


def test_walk_in_id_order_after_a_checkpoint_with_a_projection(coll):
    """The backfills' walks: ids above the checkpoint, ascending, a batch at a time; a
    missing field is missing from the projected document."""
    coll.insert_many([{"_id": f"mem_{i}", "merchant_id": "mch_a", **({"growth": i} if i % 2 else {})}
                      for i in range(5)])
    first = list(coll.find({"_id": {"$gt": ""}}, {"merchant_id": 1, "growth": 1}).sort("_id", 1).limit(3))
    assert [d["_id"] for d in first] == ["mem_0", "mem_1", "mem_2"]
    assert ["growth" in d for d in first] == [False, True, False]
    rest = list(coll.find({"_id": {"$gt": first[-1]["_id"]}}, {"merchant_id": 1}).sort("_id", 1).limit(3))
    assert [d["_id"] for d in rest] == ["mem_3", "mem_4"]
