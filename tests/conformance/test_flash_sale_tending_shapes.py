"""The query and update shapes of the flash-sale job's tending scans
(services/catalog/adapters/flash_sales.py), one test each."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pymongo import ASCENDING

NOW = datetime(2026, 5, 1, 12, 0, 0, 500_000, tzinfo=timezone.utc)


def _sale(_id: str, ends_at: datetime, available: int, reserved: int, **fields) -> dict:
    return {"_id": _id, "merchant_id": "m", "pooled": 1, "tending": 1, "ends_at": ends_at, "available": available,
            "reserved": reserved, **fields}


def test_settle_marks_only_ended_sales_with_nothing_free_or_held(coll):
    coll.create_index([("tending", ASCENDING), ("ends_at", ASCENDING)])
    coll.insert_many([
        _sale("done", NOW - timedelta(minutes=5), 0, 0),
        _sale("free_left", NOW - timedelta(minutes=5), 2, 0),
        _sale("held", NOW - timedelta(minutes=5), 0, 1),
        _sale("running", NOW + timedelta(minutes=5), 0, 0),
        _sale("just_ended", NOW - timedelta(milliseconds=200), 0, 0),
        _sale("unpooled", NOW - timedelta(minutes=5), 0, 0, pooled=0),
    ])
    settle = {"tending": 1, "pooled": 1, "ends_at": {"$lte": NOW - timedelta(seconds=1)}, "available": 0,
              "reserved": 0}
    assert coll.update_many(settle, {"$set": {"tending": 0}}).modified_count == 1
    assert coll.update_many(settle, {"$set": {"tending": 0}}).modified_count == 0
    assert sorted(d["_id"] for d in coll.find({"tending": 0})) == ["done"]
    ended = coll.find({"tending": 1, "pooled": 1, "ends_at": {"$lte": NOW}, "available": {"$gt": 0}}, {"holds": 0})
    assert [d["_id"] for d in ended] == ["free_left"]
    holding = coll.find({"tending": 1, "pooled": 1, "reserved": {"$gt": 0}, "_id": {"$gt": "a"}},
                        {"merchant_id": 1, "holds": 1}).sort("_id", ASCENDING).limit(10)
    assert [d["_id"] for d in holding] == ["held"]


def test_sales_made_before_tending_are_backfilled_once(coll):
    coll.insert_many([{"_id": "old", "pooled": 1}, {"_id": "new", "pooled": 1, "tending": 0}])
    assert coll.update_many({"tending": {"$exists": False}}, {"$set": {"tending": 1}}).modified_count == 1
    assert {d["_id"]: d["tending"] for d in coll.find({})} == {"old": 1, "new": 0}


def test_running_session_sales_are_found_among_tending_ones(coll):
    coll.create_index([("tending", ASCENDING), ("ends_at", ASCENDING)])
    start = NOW - timedelta(minutes=10)
    coll.insert_many([
        _sale("live", NOW + timedelta(minutes=5), 3, 0, live_session_id="liv_1", starts_at=start),
        _sale("unbound", NOW + timedelta(minutes=5), 3, 0, live_session_id="", starts_at=start),
        _sale("ended", NOW - timedelta(minutes=1), 3, 0, live_session_id="liv_1", starts_at=start),
        _sale("soon", NOW + timedelta(minutes=50), 3, 0, live_session_id="liv_1", starts_at=NOW + timedelta(minutes=5)),
        _sale("settled", NOW + timedelta(minutes=5), 0, 0, live_session_id="liv_1", starts_at=start, tending=0),
    ])
    found = coll.find({"tending": 1, "live_session_id": {"$gt": ""}, "pooled": 1, "starts_at": {"$lte": NOW},
                       "ends_at": {"$gt": NOW}}, {"merchant_id": 1}).limit(10)
    assert [d["_id"] for d in found] == ["live"]
