"""The storage shapes of payouts and the sandbox statement: one payout per transfer id (the
insert is the check), its move out of PROCESSING by one conditional update that one of
three racing writers wins, and the sandbox's payments and refunds of a merchant in a
half-open UTC range of aware datetimes (an Asia/Shanghai day)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from pymongo.errors import DuplicateKeyError

CN = timezone(timedelta(hours=8))


def test_a_second_payout_with_the_transfer_id_is_refused_by_the_insert(coll):
    coll.insert_one({"_id": "wdr_1", "merchant_id": "mch_a", "state": "PROCESSING", "amount": 500})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "wdr_1", "merchant_id": "mch_b", "state": "PROCESSING", "amount": 900})
    assert coll.find_one({"_id": "wdr_1", "merchant_id": "mch_b"}) is None
    assert coll.find_one({"_id": "wdr_1", "merchant_id": "mch_a"})["amount"] == 500


def test_one_of_three_writers_moves_a_payout_out_of_processing(coll):
    coll.insert_one({"_id": "wdr_1", "merchant_id": "mch_a", "state": "PROCESSING"})
    wins: list[int] = []
    start = threading.Barrier(3)

    def finish(state: str) -> None:
        start.wait()
        done = coll.update_one({"_id": "wdr_1", "merchant_id": "mch_a", "state": "PROCESSING"},
                               {"$set": {"state": state, "provider_transfer_id": state.lower()}})
        wins.append(done.matched_count)

    threads = [threading.Thread(target=finish, args=(s,)) for s in ("SUCCEEDED", "FAILED", "SUCCEEDED")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [0, 0, 1]
    doc = coll.find_one({"_id": "wdr_1"})
    assert doc["provider_transfer_id"] == doc["state"].lower()


def test_sandbox_payments_of_a_merchant_on_a_shanghai_day(coll):
    start = datetime(2026, 12, 1, tzinfo=CN).astimezone(timezone.utc)
    end = start + timedelta(days=1)
    coll.create_index([("merchant_id", 1), ("state", 1)])
    coll.insert_many([
        {"_id": "pay_1", "merchant_id": "mch_a", "method": "SANDBOX", "succeeded_at": start},  # first instant
        {"_id": "pay_2", "merchant_id": "mch_a", "method": "SANDBOX", "succeeded_at": end - timedelta(seconds=1)},
        {"_id": "pay_3", "merchant_id": "mch_a", "method": "SANDBOX", "succeeded_at": end},  # the next day
        {"_id": "pay_4", "merchant_id": "mch_a", "method": "WECHAT", "succeeded_at": start},
        {"_id": "pay_5", "merchant_id": "mch_a", "method": "SANDBOX"},  # never succeeded
        {"_id": "pay_6", "merchant_id": "mch_b", "method": "SANDBOX", "succeeded_at": start},
        {"_id": "pay_7", "merchant_id": "mch_a", "method": "SANDBOX", "succeeded_at": start,
         "refunded_at": start + timedelta(hours=2)},
    ])
    found = coll.find({"merchant_id": "mch_a", "method": "SANDBOX", "succeeded_at": {"$gte": start, "$lt": end}})
    assert sorted(d["_id"] for d in found) == ["pay_1", "pay_2", "pay_7"]
    back = coll.find({"merchant_id": "mch_a", "method": "SANDBOX", "refunded_at": {"$gte": start, "$lt": end}})
    assert [d["_id"] for d in back] == ["pay_7"]
    assert back.collection.find_one({"_id": "pay_7"})["refunded_at"].tzinfo is not None


def test_refunds_of_a_merchant_made_in_a_range(coll):
    start = datetime(2026, 12, 1, tzinfo=CN).astimezone(timezone.utc)
    coll.insert_many([
        {"_id": "rfd_1", "merchant_id": "mch_a", "refunded_at": start + timedelta(hours=1)},
        {"_id": "rfd_2", "merchant_id": "mch_a", "refunded_at": start - timedelta(seconds=1)},
        {"_id": "rfd_3", "merchant_id": "mch_a", "state": "REQUESTED"},
        {"_id": "rfd_4", "merchant_id": "mch_b", "refunded_at": start + timedelta(hours=1)},
    ])
    found = coll.find({"merchant_id": "mch_a", "refunded_at": {"$gte": start, "$lt": start + timedelta(days=1)}})
    assert [d["_id"] for d in found] == ["rfd_1"]
