"""The query and update shapes of coupon storage (services/member/adapters/coupon_store.py),
against the conformance store: the template's conditional unit counter (also raced by
real threads), the member coupons' unique keys, and the job queries."""
from __future__ import annotations

import threading

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from services.member.adapters import coupon_store
from services.member.application.coupon_ports import Inserted

T0_MS = 1_767_225_600_000  # 2026-01-01


def _template(coll, total: int, state: str = "ACTIVE", issued: int = 0) -> None:
    coll.insert_one({"_id": "cpt_1", "merchant_id": "mch_a", "state": state, "total": total, "issued": issued,
                     "claiming": {}, "claiming_count": 0, "version": 1})


def test_take_unit_takes_until_the_total_then_refuses(coll):
    _template(coll, total=2)
    assert coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    assert coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_2", T0_MS)
    assert not coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_3", T0_MS)
    doc = coll.find_one({"_id": "cpt_1"})
    assert (doc["issued"], doc["claiming_count"], sorted(doc["claiming"])) == (2, 2, ["cpn_1", "cpn_2"])


def test_take_unit_again_for_the_same_coupon_takes_nothing_more(coll):
    _template(coll, total=5)
    assert coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    assert coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    assert coll.find_one({"_id": "cpt_1"})["issued"] == 1


def test_take_unit_refuses_a_template_not_active_or_of_another_merchant(coll):
    _template(coll, total=5, state="PAUSED")
    assert not coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    coll.update_one({"_id": "cpt_1"}, {"$set": {"state": "ACTIVE"}})
    assert not coupon_store.take_unit(coll, "mch_b", "cpt_1", "cpn_1", T0_MS)
    assert coll.find_one({"_id": "cpt_1"})["issued"] == 0


def test_take_unit_without_a_total_is_unlimited(coll):
    _template(coll, total=0, issued=1_000)
    assert coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    assert coll.find_one({"_id": "cpt_1"})["issued"] == 1_001


def test_settle_and_give_back_change_only_an_entry_that_is_there(coll):
    _template(coll, total=5)
    coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_2", T0_MS)
    assert coupon_store.settle_unit(coll, "mch_a", "cpt_1", "cpn_1")
    assert not coupon_store.settle_unit(coll, "mch_a", "cpt_1", "cpn_1")
    assert coupon_store.give_back_unit(coll, "mch_a", "cpt_1", "cpn_2")
    assert not coupon_store.give_back_unit(coll, "mch_a", "cpt_1", "cpn_2")
    doc = coll.find_one({"_id": "cpt_1"})
    assert (doc["issued"], doc["claiming_count"], doc["claiming"]) == (1, 0, {})


def test_templates_with_claiming_entries_are_found_by_their_count(coll):
    _template(coll, total=5)
    coll.insert_one({"_id": "cpt_2", "merchant_id": "mch_a", "state": "ACTIVE", "total": 5, "issued": 0,
                     "claiming": {}, "claiming_count": 0})
    coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    found = list(coll.find({"claiming_count": {"$gt": 0}}, {"merchant_id": 1, "claiming": 1}).limit(10))
    assert [(d["_id"], d["claiming"]) for d in found] == [("cpt_1", {"cpn_1": T0_MS})]


def test_save_with_a_lowered_total_matches_only_while_issued_fits(coll):
    _template(coll, total=10, issued=4)
    miss = coll.update_one({"_id": "cpt_1", "merchant_id": "mch_a", "issued": {"$lte": 3}, "version": 1},
                           {"$set": {"total": 3}, "$inc": {"version": 1}})
    hit = coll.update_one({"_id": "cpt_1", "merchant_id": "mch_a", "issued": {"$lte": 4}, "version": 1},
                          {"$set": {"total": 4}, "$inc": {"version": 1}})
    assert (miss.modified_count, hit.modified_count) == (0, 1)
    assert coll.find_one({"_id": "cpt_1"})["total"] == 4


def test_a_total_changed_between_read_and_update_is_read_again(coll):
    _template(coll, total=1, issued=1)
    coll.update_one({"_id": "cpt_1"}, {"$set": {"total": 2}})
    assert coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_1", T0_MS)
    assert not coupon_store.take_unit(coll, "mch_a", "cpt_1", "cpn_2", T0_MS)


def test_concurrent_threads_claim_exactly_the_units(coll):
    """200 claimers at once for 100 units, each through its own connection thread: exactly
    100 take one, the counter ends at the total, and every winner has its entry."""
    _template(coll, total=100)
    claimers = 200
    start = threading.Barrier(claimers)
    won: list[str] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        coupon_id = f"cpn_{n:04d}"
        start.wait()
        if coupon_store.take_unit(coll, "mch_a", "cpt_1", coupon_id, T0_MS):
            with lock:
                won.append(coupon_id)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = coll.find_one({"_id": "cpt_1"})
    assert len(won) == 100
    assert doc["issued"] == 100 == doc["claiming_count"]
    assert sorted(doc["claiming"]) == sorted(won)


def _coupon(n: int, **fields) -> dict:
    return {"_id": f"cpn_{n:02d}", "merchant_id": "mch_a", "template_id": "cpt_1", "member_id": "mem_1",
            "slot": n, "claim_key": f"key-{n}", "state": "AVAILABLE", "valid_until_ms": T0_MS + n,
            "locked_until_ms": 0, "claimed_ms": T0_MS, "version": 1, **fields}


def _coupon_indexes(coll) -> None:
    coll.create_index([("merchant_id", ASCENDING), ("template_id", ASCENDING), ("member_id", ASCENDING),
                       ("slot", ASCENDING)], unique=True)
    coll.create_index([("merchant_id", ASCENDING), ("claim_key", ASCENDING)], unique=True)


def test_a_coupon_insert_tells_a_taken_slot_from_a_used_key(coll):
    _coupon_indexes(coll)
    assert coupon_store.insert_coupon(coll, _coupon(1)) == Inserted.OK
    assert coupon_store.insert_coupon(coll, {**_coupon(1), "_id": "cpn_x", "claim_key": "other"}) == \
        Inserted.SLOT_TAKEN
    assert coupon_store.insert_coupon(coll, {**_coupon(2), "claim_key": "key-1"}) == Inserted.KEY_USED
    # The same slot of another member, or of another merchant, is free.
    assert coupon_store.insert_coupon(coll, {**_coupon(1), "_id": "cpn_y", "member_id": "mem_2",
                                             "claim_key": "k-y"}) == Inserted.OK
    assert coupon_store.insert_coupon(coll, {**_coupon(1), "_id": "cpn_z", "merchant_id": "mch_b"}) == Inserted.OK
    assert coll.count_documents({"merchant_id": "mch_a"}) == 2


def test_concurrent_threads_for_one_slot_insert_once(coll):
    _coupon_indexes(coll)
    tries = 20
    start = threading.Barrier(tries)
    results: list[Inserted] = []
    lock = threading.Lock()

    def insert(n: int) -> None:
        start.wait()
        outcome = coupon_store.insert_coupon(coll, {**_coupon(1), "_id": f"cpn_t{n}", "claim_key": f"t-{n}"})
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(tries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(Inserted.OK) == 1 and results.count(Inserted.SLOT_TAKEN) == tries - 1


def test_delete_only_while_claiming(coll):
    coll.insert_many([_coupon(1, state="CLAIMING"), _coupon(2)])
    assert coll.delete_one({"_id": "cpn_01", "merchant_id": "mch_a", "state": "CLAIMING"}).deleted_count == 1
    assert coll.delete_one({"_id": "cpn_02", "merchant_id": "mch_a", "state": "CLAIMING"}).deleted_count == 0


def test_member_coupons_by_states_newest_first_with_keyset(coll):
    coll.insert_many([_coupon(1), _coupon(2, state="USED"), _coupon(3, state="LOCKED"), _coupon(4),
                      _coupon(5, member_id="mem_2"), _coupon(6, merchant_id="mch_b")])
    query = {"merchant_id": "mch_a", "member_id": "mem_1", "state": {"$in": ["AVAILABLE", "LOCKED"]}}
    first = list(coll.find(query, {"outbox": 0}).sort("_id", DESCENDING).limit(2))
    rest = list(coll.find({**query, "_id": {"$lt": first[-1]["_id"]}}, {"outbox": 0}).sort("_id", DESCENDING).limit(2))
    assert [d["_id"] for d in first] == ["cpn_04", "cpn_03"]
    assert [d["_id"] for d in rest] == ["cpn_01"]


def test_slots_of_a_member_and_template(coll):
    coll.insert_many([_coupon(1), _coupon(3), _coupon(2, template_id="cpt_2")])
    docs = coll.find({"merchant_id": "mch_a", "template_id": "cpt_1", "member_id": "mem_1"}, {"slot": 1})
    assert sorted(d["slot"] for d in docs) == [1, 3]


def test_due_overdue_and_stale_by_epoch_ms_ranges(coll):
    coll.insert_many([_coupon(1), _coupon(2), _coupon(3, state="LOCKED", locked_until_ms=T0_MS + 10),
                      _coupon(4, state="LOCKED", locked_until_ms=T0_MS + 30),
                      _coupon(5, state="CLAIMING", claimed_ms=T0_MS - 1), _coupon(6, state="CLAIMING")])
    due = list(coll.find({"state": "AVAILABLE", "valid_until_ms": {"$lte": T0_MS + 1}}).sort("_id", 1).limit(10))
    after = list(coll.find({"state": "AVAILABLE", "valid_until_ms": {"$lte": T0_MS + 2}, "_id": {"$gt": "cpn_01"}})
                 .sort("_id", 1).limit(10))
    overdue = list(coll.find({"state": "LOCKED", "locked_until_ms": {"$lt": T0_MS + 20}}).sort("_id", 1).limit(10))
    stale = list(coll.find({"state": "CLAIMING", "claimed_ms": {"$lt": T0_MS}}).sort("_id", 1).limit(10))
    assert [d["_id"] for d in due] == ["cpn_01"]
    assert [d["_id"] for d in after] == ["cpn_02"]
    assert [d["_id"] for d in overdue] == ["cpn_03"]
    assert [d["_id"] for d in stale] == ["cpn_05"]


def test_template_stats_read_by_state_in_with_projection(coll):
    coll.insert_many([_coupon(1, state="USED", discount=500, order_amount=9000), _coupon(2, state="USED",
                      discount=300, order_amount=4000), _coupon(3, state="LOCKED"), _coupon(4),
                      _coupon(5, state="EXPIRED"), _coupon(6, state="USED", template_id="cpt_2", discount=1)])
    docs = list(coll.find({"merchant_id": "mch_a", "template_id": "cpt_1",
                           "state": {"$in": ["LOCKED", "USED", "EXPIRED"]}},
                          {"state": 1, "discount": 1, "order_amount": 1}))
    used = [d for d in docs if d["state"] == "USED"]
    assert (len(docs), len(used), sum(d["discount"] for d in used), sum(d["order_amount"] for d in used)) == \
        (4, 2, 800, 13000)


def test_a_versioned_save_replaces_the_returned_by_list(coll):
    coll.insert_one(_coupon(1, returned_by=["ord_1"]))
    hit = coll.update_one({"_id": "cpn_01", "merchant_id": "mch_a", "version": 1},
                          {"$set": {"state": "LOCKED", "returned_by": ["ord_1", "ord_2"], "locked_until_ms": 5},
                           "$inc": {"version": 1}})
    again = coll.update_one({"_id": "cpn_01", "merchant_id": "mch_a", "version": 1}, {"$set": {"state": "USED"}})
    doc = coll.find_one({"_id": "cpn_01"})
    assert (hit.modified_count, again.modified_count) == (1, 0)
    assert (doc["state"], doc["returned_by"], doc["version"]) == ("LOCKED", ["ord_1", "ord_2"], 2)


def test_grant_jobs_unique_key_and_running_oldest_first(coll):
    coll.create_index([("merchant_id", ASCENDING), ("key", ASCENDING)], unique=True)
    for n, state in ((1, "DONE"), (2, "RUNNING"), (3, "RUNNING")):
        coll.insert_one({"_id": f"cgj_{n}", "merchant_id": "mch_a", "key": f"k{n}", "state": state,
                         "skipped": {"COUPON_SOLD_OUT": n}, "member_ids": ["mem_1", "mem_2"]})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "cgj_9", "merchant_id": "mch_a", "key": "k1", "state": "RUNNING"})
    running = list(coll.find({"state": "RUNNING"}, {"outbox": 0}).sort("_id", 1).limit(10))
    assert [d["_id"] for d in running] == ["cgj_2", "cgj_3"]
    assert running[0]["skipped"] == {"COUPON_SOLD_OUT": 2} and running[0]["member_ids"] == ["mem_1", "mem_2"]


def test_settings_upsert_by_merchant(coll):
    for flag in (0, 1):
        coll.update_one({"_id": "mch_a"}, {"$set": {"merchant_id": "mch_a", "return_on_refund": flag}}, upsert=True)
    assert coll.find_one({"_id": "mch_a", "merchant_id": "mch_a"})["return_on_refund"] == 1
    assert coll.find_one({"_id": "mch_a", "merchant_id": "mch_b"}) is None


# ---- a grant's chunk: several units, coupons and confirmations per write ----------------------------

def test_take_units_takes_n_at_once_within_the_total_and_never_for_an_entry_already_there(coll):
    _template(coll, total=5, issued=1)
    assert coupon_store.take_units(coll, "mch_a", "cpt_1", ["cpn_1", "cpn_2", "cpn_3"], T0_MS)
    assert coupon_store.claiming_ids(coll, "mch_a", "cpt_1") == {"cpn_1", "cpn_2", "cpn_3"}
    assert coupon_store.claiming_ids(coll, "mch_b", "cpt_1") == set()
    assert not coupon_store.take_units(coll, "mch_a", "cpt_1", ["cpn_4", "cpn_5"], T0_MS)   # 1 + 3 + 2 > 5
    assert not coupon_store.take_units(coll, "mch_a", "cpt_1", ["cpn_3"], T0_MS)            # taken before
    assert coupon_store.take_units(coll, "mch_a", "cpt_1", ["cpn_4"], T0_MS)
    doc = coll.find_one({"_id": "cpt_1"})
    assert (doc["issued"], doc["claiming_count"]) == (5, 4)
    coupon_store.settle_units(coll, "mch_a", "cpt_1", ["cpn_1", "cpn_2"])
    coupon_store.settle_unit(coll, "mch_a", "cpt_1", "cpn_3")
    coupon_store.settle_units(coll, "mch_a", "cpt_1", ["cpn_3", "cpn_4"])     # one settled already: one by one
    doc = coll.find_one({"_id": "cpt_1"})
    assert (doc["issued"], doc["claiming_count"], doc["claiming"]) == (5, 0, {})


def test_take_units_without_a_total_and_not_while_paused(coll):
    _template(coll, total=0, issued=10, state="PAUSED")
    assert not coupon_store.take_units(coll, "mch_a", "cpt_1", ["cpn_1"], T0_MS)
    coll.update_one({"_id": "cpt_1"}, {"$set": {"state": "ACTIVE"}})
    assert coupon_store.take_units(coll, "mch_a", "cpt_1", [f"cpn_{i}" for i in range(300)], T0_MS)
    assert coll.find_one({"_id": "cpt_1"})["issued"] == 310


def test_coupons_insert_unordered_leaving_out_held_keys_and_slots_and_confirm_under_versions(coll):
    _coupon_indexes(coll)
    coll.insert_one(_coupon(1, member_id="mem_a"))
    docs = [_coupon(2, member_id="mem_a", claim_key="key-1"),                # the key is held
            _coupon(3, member_id="mem_a", slot=1),                           # the slot is held
            _coupon(4, member_id="mem_b", state="CLAIMING"), _coupon(5, member_id="mem_c", state="CLAIMING")]
    assert coupon_store.insert_coupons(coll, docs) == {"cpn_04", "cpn_05"}
    assert coupon_store.insert_coupons(coll, docs[2:]) == set()
    found = list(coll.find({"merchant_id": "mch_a", "template_id": "cpt_1", "member_id": {"$in": ["mem_a", "mem_b"]}},
                           {"outbox": 0}))
    assert sorted(d["_id"] for d in found) == ["cpn_01", "cpn_04"]
    confirm = {"$set": {"state": "AVAILABLE", "updated_ms": T0_MS, "outbox.ev_1": {"t": "x"}, "outbox_pending": 1},
               "$inc": {"version": 1, "outbox_seq": 1}}
    assert coupon_store.confirm_coupons(coll, [
        ({"_id": "cpn_04", "merchant_id": "mch_a", "version": 1}, confirm),
        ({"_id": "cpn_05", "merchant_id": "mch_a", "version": 7}, confirm),     # another writer came first
        ({"_id": "cpn_01", "merchant_id": "mch_a", "version": 1}, confirm)]) == {"cpn_04", "cpn_01"}
    doc = coll.find_one({"_id": "cpn_04"})
    assert (doc["state"], doc["version"], doc["outbox"], doc["outbox_pending"]) == ("AVAILABLE", 2, {"ev_1": {"t": "x"}},
                                                                                      1)
    assert coll.find_one({"_id": "cpn_05"})["state"] == "CLAIMING"
