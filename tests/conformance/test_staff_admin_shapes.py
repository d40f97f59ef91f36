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
