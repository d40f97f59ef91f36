"""The query and update shapes of the value hold intents
(services/order/adapters/member_value.py): insert once per order, the sweep's leased
claim of intents older than the grace, and removal by order and merchant."""
from __future__ import annotations

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from tests.support import new_merchant_id


def _intent(coll, merchant: str, order_id: str, created_ms: int) -> None:
    coll.insert_one({"_id": order_id, "merchant_id": merchant, "member_id": "mem_1", "coupon_id": "cpn_1",
                     "points": 300, "created_ms": created_ms, "lease_ms": 0})


def _claim(coll, before_ms: int, now_ms: int):
    return coll.find_one_and_update({"created_ms": {"$lt": before_ms}, "lease_ms": {"$lt": now_ms}},
                                    {"$set": {"lease_ms": now_ms + 60_000}}, return_document=ReturnDocument.AFTER)


def test_an_intent_is_inserted_once_per_order(coll):
    merchant = new_merchant_id()
    _intent(coll, merchant, "ord_1", 1_000)
    try:
        _intent(coll, merchant, "ord_1", 2_000)
        raise AssertionError("a second intent for the same order was stored")
    except DuplicateKeyError:
        pass
    assert coll.find_one({"_id": "ord_1"})["created_ms"] == 1_000


def test_the_sweep_claims_only_old_unleased_intents_each_once(coll):
    merchant = new_merchant_id()
    _intent(coll, merchant, "ord_old", 1_000)
    _intent(coll, merchant, "ord_new", 9_000)
    first = _claim(coll, before_ms=5_000, now_ms=10_000)
    assert first["_id"] == "ord_old" and first["lease_ms"] == 70_000 and first["points"] == 300
    assert _claim(coll, before_ms=5_000, now_ms=10_001) is None, "leased to the first sweeper"
    again = _claim(coll, before_ms=5_000, now_ms=70_001)
    assert again["_id"] == "ord_old", "the lease ran out"


def test_an_intent_is_removed_by_order_and_merchant_only(coll):
    merchant = new_merchant_id()
    _intent(coll, merchant, "ord_1", 1_000)
    assert coll.delete_one({"_id": "ord_1", "merchant_id": new_merchant_id()}).deleted_count == 0
    assert coll.delete_one({"_id": "ord_1", "merchant_id": merchant}).deleted_count == 1
    assert coll.delete_one({"_id": "ord_1", "merchant_id": merchant}).deleted_count == 0
