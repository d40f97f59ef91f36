"""The storage shape of an order's stored value: the whole `stored_value` sub-document
(with nested maps of refund splits) written by one $set on the order's version, alone or
beside the other fields of a change, and read back as it was written."""
from __future__ import annotations

import threading

from services.order.adapters.tender_docs import stored_value_doc, stored_value_of
from services.order.domain.tender import RechargeTerms, StoredValue


def test_the_stored_value_sub_document_is_replaced_whole_on_the_version_and_reads_back(coll):
    coll.insert_one({"_id": "ord_1", "merchant_id": "mch_a", "state": "PENDING_PAYMENT", "version": 1})
    held = StoredValue().asking().held(300, 1000)
    done = coll.update_one({"_id": "ord_1", "merchant_id": "mch_a", "version": 1},
                           {"$set": {"stored_value": stored_value_doc(held)}, "$inc": {"version": 1}})
    assert done.modified_count == 1
    refunded, _ = held.refund("rfd_1", 500, 1000)
    refunded, _ = refunded.refund("rfd_2", 500, 1000)
    coll.update_one({"_id": "ord_1", "merchant_id": "mch_a", "version": 2},
                    {"$set": {"state": "PAID", "stored_value": stored_value_doc(refunded)}, "$inc": {"version": 1}})
    doc = coll.find_one({"_id": "ord_1"})
    assert doc["version"] == 3 and doc["state"] == "PAID"
    assert stored_value_of(doc["stored_value"]) == refunded
    assert doc["stored_value"]["splits"]["rfd_2"] == {"balance": 150, "provider": 350}


def test_a_recharge_orders_terms_read_back_and_an_order_without_stored_value_is_the_default(coll):
    sv = StoredValue.recharge_of(RechargeTerms("rcp_1", 10000, 2000))
    coll.insert_many([{"_id": "ord_1", "stored_value": stored_value_doc(sv)}, {"_id": "ord_2"}])
    assert stored_value_of(coll.find_one({"_id": "ord_1"}).get("stored_value")) == sv
    assert stored_value_of(coll.find_one({"_id": "ord_2"}).get("stored_value")).is_default


def test_of_three_tender_writes_on_one_version_one_wins(coll):
    coll.insert_one({"_id": "ord_1", "merchant_id": "mch_a", "version": 4})
    wins: list[int] = []
    start = threading.Barrier(3)

    def write(amount: int) -> None:
        start.wait()
        done = coll.update_one({"_id": "ord_1", "merchant_id": "mch_a", "version": 4},
                               {"$set": {"stored_value": stored_value_doc(StoredValue().held(amount, 1000))},
                                "$inc": {"version": 1}})
        wins.append(done.modified_count)

    threads = [threading.Thread(target=write, args=(100 * i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [0, 0, 1] and coll.find_one({"_id": "ord_1"})["version"] == 5
