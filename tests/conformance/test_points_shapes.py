"""The query and update shapes of the points account and its ledger
(services/member/adapters/points_store.py), one test each."""
from __future__ import annotations

import threading

from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from siyu_kit.ids import new_id
from tests.support import new_merchant_id


def _account(coll, merchant: str, **fields) -> dict:
    doc = {"_id": "mem_1", "merchant_id": merchant, "balance": 0, "available": 0, "frozen": 0, "held": 0,
           "owed": 0, "lots": {}, "frozen_lots": {}, "holds": {}, "done": {}, "pending": {}, "pending_count": 0,
           **fields}
    coll.insert_one(doc)
    return doc


def test_movement_guarded_by_cause_counters_and_lots_applies_once(coll):
    """A hold: the cause marker absent, the counter and each lot it takes from still
    holding enough; counters and lots $inc, hold, marker and owed entry $set in one write."""
    merchant = new_merchant_id()
    _account(coll, merchant, balance=300, available=300, lots={"e20251231": 100, "e20261231": 200})

    def hold(order: str, takes: dict[str, int]) -> int:
        n = sum(takes.values())
        query = {"_id": "mem_1", "merchant_id": merchant, f"done.c{order}": {"$exists": False},
                 f"done.r{order}": {"$exists": False}, f"holds.{order}": {"$exists": False},
                 "available": {"$gte": n}, **{f"lots.{k}": {"$gte": v} for k, v in takes.items()}}
        update = {"$inc": {"available": -n, "held": n, "pending_count": 1, **{f"lots.{k}": -v for k, v in takes.items()}},
                  "$set": {f"done.c{order}": 1, f"pending.c{order}": {"kind": "HOLD", "points": 0, "held": n},
                           f"holds.{order}": {"points": n, "takes": takes}}}
        return coll.update_one(query, update).modified_count

    assert hold("o1", {"e20251231": 100, "e20261231": 50}) == 1
    assert hold("o1", {"e20261231": 100}) == 0  # replayed cause
    assert hold("o2", {"e20251231": 1}) == 0  # the lot no longer holds it
    assert hold("o2", {"e20261231": 151}) == 0
    doc = coll.find_one({"_id": "mem_1"})
    assert (doc["available"], doc["held"], doc["lots"]) == (150, 150, {"e20251231": 0, "e20261231": 150})
    assert doc["holds"]["o1"] == {"points": 150, "takes": {"e20251231": 100, "e20261231": 50}}
    # A release: the hold must still be there with its points; it is removed and the
    # points go back to the lots they came from.
    release = {"_id": "mem_1", "merchant_id": merchant, "done.d": {"$exists": False}, "holds.o1.points": 150,
               "held": {"$gte": 150}}
    back = {"$inc": {"available": 150, "held": -150, "lots.e20251231": 100, "lots.e20261231": 50},
            "$unset": {"holds.o1": ""}, "$set": {"done.d": 1}}
    assert coll.update_one(release, back).modified_count == 1
    assert coll.update_one(release, back).modified_count == 0
    doc = coll.find_one({"_id": "mem_1"})
    assert (doc["available"], doc["held"], doc["holds"], doc["lots"]) == \
        (300, 0, {}, {"e20251231": 100, "e20261231": 200})


def test_nested_lot_points_guarded_equal_or_at_least_then_inc_or_unset(coll):
    merchant = new_merchant_id()
    _account(coll, merchant, balance=50, frozen=50, frozen_lots={"ord_1": {"points": 50, "key": "e1", "unfreeze_ms": 0}})
    take = coll.update_one({"_id": "mem_1", "merchant_id": merchant, "frozen_lots.ord_1.points": {"$gte": 20}},
                           {"$inc": {"frozen_lots.ord_1.points": -20, "frozen": -20}})
    assert take.modified_count == 1
    assert coll.update_one({"_id": "mem_1", "frozen_lots.ord_1.points": 50},
                           {"$unset": {"frozen_lots.ord_1": ""}}).modified_count == 0
    assert coll.update_one({"_id": "mem_1", "frozen_lots.ord_1": {"$exists": True}},
                           {"$set": {"frozen_lots.ord_1.unfreeze_ms": 1_700_000_000_000}}).modified_count == 1
    assert coll.update_one({"_id": "mem_1", "frozen_lots.ord_1.points": 30},
                           {"$unset": {"frozen_lots.ord_1": ""}, "$inc": {"frozen": -30}}).modified_count == 1
    doc = coll.find_one({"_id": "mem_1"})
    assert (doc["frozen"], doc["frozen_lots"]) == (0, {})


def test_min_lowers_a_due_time_and_sets_an_absent_one(coll):
    merchant = new_merchant_id()
    _account(coll, merchant)
    coll.update_one({"_id": "mem_1"}, {"$min": {"due_ms": 500}})
    assert coll.find_one({"_id": "mem_1"})["due_ms"] == 500
    coll.update_one({"_id": "mem_1"}, {"$min": {"due_ms": 900}})
    assert coll.find_one({"_id": "mem_1"})["due_ms"] == 500
    coll.update_one({"_id": "mem_1"}, {"$min": {"due_ms": 100}, "$inc": {"balance": 1}})
    assert coll.find_one({"_id": "mem_1"})["due_ms"] == 100


def test_claim_due_accounts_by_lease_one_claimer_each(coll):
    """The jobs' claim: due and not leased (or the lease ran out) → leased now; three
    claimers of the same account: one gets it."""
    merchant = new_merchant_id()
    for i, due in enumerate((100, 200, 5_000)):
        coll.insert_one({"_id": f"mem_{i}", "merchant_id": merchant, "due_ms": due, "lease_ms": 0})

    def claim(now: int) -> dict | None:
        return coll.find_one_and_update({"due_ms": {"$lte": now}, "lease_ms": {"$lt": now}},
                                        {"$set": {"lease_ms": now + 30_000}}, projection={"merchant_id": 1},
                                        return_document=ReturnDocument.AFTER)

    got = [claim(1_000) for _ in range(3)]
    assert sorted(g["_id"] for g in got if g) == ["mem_0", "mem_1"] and got[2] is None
    assert claim(40_000)["_id"] in {"mem_0", "mem_1", "mem_2"}
    coll.update_one({"_id": "mem_0"}, {"$set": {"due_ms": 9_999_999, "lease_ms": 0}})
    assert coll.count_documents({"due_ms": {"$lte": 1_000}}) == 1


def test_concurrent_guarded_holds_never_take_more_than_available(coll):
    merchant = new_merchant_id()
    _account(coll, merchant, balance=1_000, available=1_000, lots={"e20261231": 1_000})
    won: list[str] = []

    def hold(order: str) -> None:
        query = {"_id": "mem_1", "merchant_id": merchant, f"done.{order}": {"$exists": False},
                 "available": {"$gte": 300}, "lots.e20261231": {"$gte": 300}}
        if coll.update_one(query, {"$inc": {"available": -300, "held": 300, "lots.e20261231": -300},
                                   "$set": {f"done.{order}": 1}}).modified_count:
            won.append(order)

    threads = [threading.Thread(target=hold, args=(f"o{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = coll.find_one({"_id": "mem_1"})
    assert len(won) == 3 and (doc["available"], doc["held"], doc["lots"]["e20261231"]) == (100, 900, 100)


def test_ledger_unique_per_cause_with_kind_after_dropping_the_index_without_kind(db):
    """Entries from before kinds (none) stay; the old unique index over (source, source_id)
    is dropped and every entry written since carries a kind. An entry without a kind is
    not guarded by the new index (the store indexes an absent field as distinct), so the
    account remembers those causes itself."""
    coll = db[f"c_points_ledger_{new_id('c').lower()[-10:]}"]
    old_key = [("merchant_id", 1), ("source", 1), ("source_id", 1)]
    coll.create_index(old_key, unique=True)
    merchant = new_merchant_id()
    coll.insert_one({"_id": "pte_1", "merchant_id": merchant, "source": "ORDER", "source_id": "ord_1"})  # before kinds
    # Index names differ between stores: the index is found by its key.
    names = [n for n, i in coll.index_information().items() if list(i["key"]) == old_key]
    assert len(names) == 1
    coll.drop_index(names[0])
    assert not [n for n, i in coll.index_information().items() if list(i["key"]) == old_key]
    coll.create_index([("merchant_id", 1), ("source", 1), ("source_id", 1), ("kind", 1)], unique=True)
    coll.insert_one({"_id": "pte_2", "merchant_id": merchant, "source": "ORDER", "source_id": "ord_1", "kind": "HOLD"})
    coll.insert_one({"_id": "pte_3", "merchant_id": merchant, "source": "ORDER", "source_id": "ord_1", "kind": "SPEND"})
    try:
        coll.insert_one({"_id": "pte_4", "merchant_id": merchant, "source": "ORDER", "source_id": "ord_1",
                         "kind": "HOLD"})
        raise AssertionError("duplicate cause stored")
    except DuplicateKeyError:
        pass
    found = coll.find_one({"merchant_id": merchant, "source": "ORDER", "source_id": "ord_1", "kind": "SPEND"})
    assert found["_id"] == "pte_3"
    coll.drop()


def test_history_newest_first_by_id_with_lt_cursor_per_member(coll):
    merchant = new_merchant_id()
    for i in range(5):
        coll.insert_one({"_id": f"pte_{i}", "merchant_id": merchant, "member_id": "mem_1", "points": i})
    coll.insert_one({"_id": "pte_9", "merchant_id": merchant, "member_id": "mem_2", "points": 9})
    page = list(coll.find({"merchant_id": merchant, "member_id": "mem_1"}, {"outbox": 0})
                .sort("_id", DESCENDING).limit(2))
    assert [d["_id"] for d in page] == ["pte_4", "pte_3"]
    page = list(coll.find({"merchant_id": merchant, "member_id": "mem_1", "_id": {"$lt": "pte_3"}})
                .sort("_id", DESCENDING).limit(2))
    assert [d["_id"] for d in page] == ["pte_2", "pte_1"]


def test_find_accounts_owing_ledger_entries_and_clear_one(coll):
    merchant = new_merchant_id()
    _account(coll, merchant, pending={"ca": {"kind": "EARN", "at_ms": 1}, "cb": {"kind": "HOLD", "at_ms": 2}},
             pending_count=2)
    owing = list(coll.find({"pending_count": {"$gt": 0}}, {"merchant_id": 1, "pending": 1}).limit(10))
    assert [d["_id"] for d in owing] == ["mem_1"] and set(owing[0]["pending"]) == {"ca", "cb"}
    clear = {"_id": "mem_1", "merchant_id": merchant, "pending.ca": {"$exists": True}}
    assert coll.update_one(clear, {"$unset": {"pending.ca": ""}, "$inc": {"pending_count": -1}}).modified_count == 1
    assert coll.update_one(clear, {"$unset": {"pending.ca": ""}, "$inc": {"pending_count": -1}}).modified_count == 0
    assert coll.find_one({"_id": "mem_1"})["pending_count"] == 1


def test_unfreeze_time_set_on_a_present_lot_lowering_the_due_time_then_moved_on_if_unchanged(coll):
    merchant = new_merchant_id()
    _account(coll, merchant, frozen_lots={"ord_1": {"points": 5, "key": "e1", "unfreeze_ms": 0}})
    set_at = {"$set": {"frozen_lots.ord_1.unfreeze_ms": 700}, "$min": {"unfreeze_due_ms": 700}}
    present = {"_id": "mem_1", "merchant_id": merchant, "frozen_lots.ord_1": {"$exists": True}}
    assert coll.update_one(present, set_at).matched_count == 1
    assert coll.update_one({**present, "frozen_lots.ord_2": {"$exists": True}}, set_at).matched_count == 0
    doc = coll.find_one({"_id": "mem_1"})
    assert (doc["frozen_lots"]["ord_1"]["unfreeze_ms"], doc["unfreeze_due_ms"]) == (700, 700)
    # The job moves the due time on only if no one lowered it since it read it.
    moved = coll.update_one({"_id": "mem_1", "merchant_id": merchant, "unfreeze_due_ms": 700},
                            {"$set": {"unfreeze_due_ms": 2**62}})
    stale = coll.update_one({"_id": "mem_1", "merchant_id": merchant, "unfreeze_due_ms": 700},
                            {"$set": {"unfreeze_due_ms": 5}})
    assert (moved.modified_count, stale.modified_count) == (1, 0)
    assert coll.find_one({"_id": "mem_1"})["unfreeze_due_ms"] == 2**62


def test_entries_of_one_order_of_a_member_its_own_and_its_refunds(coll):
    merchant = new_merchant_id()
    rows = (("mem_1", "ORDER", "ord_1", "EARN", ""), ("mem_1", "ORDER", "ord_1", None, ""),
            ("mem_1", "REFUND", "rfd_1", "REVERSE", "ord_1"), ("mem_1", "ORDER", "ord_2", "EARN", ""),
            ("mem_2", "REFUND", "rfd_2", "REVERSE", "ord_1"))
    for i, (member, source, source_id, kind, order) in enumerate(rows):
        doc = {"_id": f"pte_{i}", "merchant_id": merchant, "member_id": member, "source": source,
               "source_id": source_id, "order_id": order}
        if kind:
            doc["kind"] = kind
        coll.insert_one(doc)
    own = coll.find({"merchant_id": merchant, "source": "ORDER", "source_id": "ord_1", "member_id": "mem_1"},
                    {"outbox": 0})
    refunds = coll.find({"merchant_id": merchant, "member_id": "mem_1", "order_id": "ord_1", "kind": "REVERSE"},
                        {"outbox": 0})
    assert sorted(d["_id"] for d in own) == ["pte_0", "pte_1"] and [d["_id"] for d in refunds] == ["pte_2"]
