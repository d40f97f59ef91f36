"""The storage shapes of WeChat's refund status on our refunds: the query job's scan of
PROCESSING refunds due, its compare-and-set claim, and staff's list by provider status."""
from __future__ import annotations

import threading

from pymongo import ASCENDING, DESCENDING


def test_due_processing_refunds_by_epoch_ms_range_skip_older_documents_without_the_field(coll):
    coll.create_index([("provider_query_ms", 1), ("provider_status", 1)])
    coll.insert_many([
        {"_id": "rfd_1", "provider_status": "PROCESSING", "provider_query_ms": 1_700_000_020_000},
        {"_id": "rfd_2", "provider_status": "PROCESSING", "provider_query_ms": 1_700_000_010_000},
        {"_id": "rfd_3", "provider_status": "PROCESSING", "provider_query_ms": 1_700_000_090_000},  # not yet
        {"_id": "rfd_4", "provider_status": "SUCCEEDED", "provider_query_ms": 0},
        {"_id": "rfd_5", "provider_status": "PROCESSING", "provider_query_ms": 0},  # never again
        {"_id": "rfd_6", "state": "REFUNDED"},  # older: no provider fields at all
    ])
    found = coll.find({"provider_query_ms": {"$gt": 0, "$lte": 1_700_000_030_000},
                       "provider_status": "PROCESSING"}).sort([("provider_query_ms", ASCENDING)]).limit(50)
    assert [d["_id"] for d in found] == ["rfd_2", "rfd_1"]


def test_claiming_a_refund_by_its_next_query_time_lets_one_of_three_threads_through(coll):
    coll.insert_one({"_id": "rfd_1", "merchant_id": "mch_a", "provider_query_ms": 1_000, "version": 3})
    wins: list[int] = []
    start = threading.Barrier(3)

    def claim(next_ms: int) -> None:
        start.wait()
        done = coll.update_one({"_id": "rfd_1", "merchant_id": "mch_a", "provider_query_ms": 1_000},
                               {"$set": {"provider_query_ms": next_ms}})
        wins.append(done.modified_count)

    threads = [threading.Thread(target=claim, args=(2_000 + i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [0, 0, 1]
    doc = coll.find_one({"_id": "rfd_1"})
    assert doc["provider_query_ms"] in (2_000, 2_001, 2_002) and doc["version"] == 3  # the version is not touched


def test_refunds_of_a_merchant_by_provider_status_newest_first_with_a_cursor(coll):
    coll.create_index([("merchant_id", 1), ("provider_status", 1)])
    coll.insert_many([{"_id": f"rfd_{i}", "merchant_id": "mch_a", "provider_status": s}
                      for i, s in enumerate(("ABNORMAL", "SUCCEEDED", "ABNORMAL", "ABNORMAL"))])
    coll.insert_one({"_id": "rfd_9", "merchant_id": "mch_b", "provider_status": "ABNORMAL"})
    page = coll.find({"merchant_id": "mch_a", "provider_status": "ABNORMAL"}).sort("_id", DESCENDING).limit(2)
    assert [d["_id"] for d in page] == ["rfd_3", "rfd_2"]
    rest = coll.find({"merchant_id": "mch_a", "provider_status": "ABNORMAL", "_id": {"$lt": "rfd_2"}}) \
        .sort("_id", DESCENDING).limit(2)
    assert [d["_id"] for d in rest] == ["rfd_0"]
