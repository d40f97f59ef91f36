"""The storage shapes of group buy (services/order/adapters/group_buy_store.py): the slot
taken by one conditional update on the group (member and order map entries absent, paid
below the size, `$inc`, sub-documents set at map keys, the outbox entry in the same write)
that racing writers never push past the size; the expired-groups scan and its
compare-and-set close; the joinable list; groups by ids; tickets of a member; activities
paged and their terms replaced whole."""
from __future__ import annotations

import threading

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from siyu_kit.events.outbox import Event, add_to_update, for_insert

NOW = 1_800_000_000_000


def a_group(coll, gid: str = "grp_1", size: int = 3, expires_ms: int = NOW + 60_000, **more) -> None:
    coll.insert_one({"_id": gid, "merchant_id": "mch_a", "activity_id": "gba_1", "sku_id": "sku_1", "size": size,
                     "state": "OPEN", "paid": 1, "placeholders": 0, "opened_ms": NOW, "expires_ms": expires_ms,
                     "members": {"mem_l": {"order_id": "ord_l", "leader": 1, "joined_ms": NOW, "nickname": "张**"}},
                     "orders": {"ord_l": "mem_l"}, **for_insert(Event("evt_0", "siyu.order.group.opened", b"x")),
                     **more})


def take(coll, member: str, order: str, size: int = 3, last: bool = False, now: int = NOW,
         gid: str = "grp_1") -> bool:
    query = {"_id": gid, "merchant_id": "mch_a", "state": "OPEN", "expires_ms": {"$gt": now},
             f"members.{member}": {"$exists": False}, f"orders.{order}": {"$exists": False},
             "paid": size - 1 if last else {"$lt": size - 1}}
    sets = {f"members.{member}": {"order_id": order, "leader": 0, "joined_ms": now, "nickname": "李**",
                                  "share_code": "s1"},
            f"orders.{order}": member, "updated_ms": now}
    events = [Event(f"evt_j_{order}", "siyu.order.group.joined", b"j")]
    if last:
        sets["state"] = "FORMED"
        events.append(Event(f"evt_f_{order}", "siyu.order.group.formed", b"f"))
    return coll.update_one(query, add_to_update({"$set": sets, "$inc": {"paid": 1}}, *events)).modified_count == 1


def test_a_slot_is_taken_by_one_conditional_update_and_the_last_forms_the_group(coll):
    a_group(coll)
    assert take(coll, "mem_1", "ord_1")
    assert not take(coll, "mem_1", "ord_9")  # the member is in it
    assert not take(coll, "mem_9", "ord_1")  # the order is in it
    assert not take(coll, "mem_2", "ord_2")  # not below size − 1 any more: only the last-slot form matches
    assert take(coll, "mem_2", "ord_2", last=True)
    assert not take(coll, "mem_3", "ord_3", last=True) and not take(coll, "mem_3", "ord_3")
    doc = coll.find_one({"_id": "grp_1"})
    assert (doc["state"], doc["paid"]) == ("FORMED", 3)
    assert set(doc["members"]) == {"mem_l", "mem_1", "mem_2"} and set(doc["orders"]) == {"ord_l", "ord_1", "ord_2"}
    assert doc["members"]["mem_2"] == {"order_id": "ord_2", "leader": 0, "joined_ms": NOW, "nickname": "李**",
                                       "share_code": "s1"}
    assert doc["members"]["mem_l"]["leader"] == 1 and doc["orders"]["ord_1"] == "mem_1"
    assert set(doc["outbox"]) == {"evt_0", "evt_j_ord_1", "evt_j_ord_2", "evt_f_ord_2"}
    assert doc["outbox"]["evt_f_ord_2"]["subject"] == "siyu.order.group.formed" and doc["outbox_pending"] == 1


def test_an_expired_or_closed_group_takes_no_slot(coll):
    a_group(coll, expires_ms=NOW)
    assert not take(coll, "mem_1", "ord_1", now=NOW)
    assert take(coll, "mem_1", "ord_1", now=NOW - 1)
    a_group(coll, gid="grp_2", state="FAILED")
    assert not take(coll, "mem_1", "ord_1", gid="grp_2")


def test_racing_writers_never_overfill_a_group(coll):
    a_group(coll, size=3)
    start = threading.Barrier(8)
    wins: list[str] = []

    def join(i: int) -> None:
        start.wait()
        for _ in range(5):
            paid = coll.find_one({"_id": "grp_1"})["paid"]
            if paid >= 3:
                return
            if take(coll, f"mem_{i}", f"ord_{i}", last=paid == 2):
                wins.append(f"mem_{i}")
                return

    threads = [threading.Thread(target=join, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = coll.find_one({"_id": "grp_1"})
    assert doc["paid"] == 3 == len(doc["members"]) and len(wins) == 2 and doc["state"] == "FORMED"
    assert sum(1 for e in doc["outbox"].values() if e["subject"] == "siyu.order.group.formed") == 1


def test_expired_open_groups_are_scanned_by_deadline_and_closed_once(coll):
    coll.create_index([("state", ASCENDING), ("expires_ms", ASCENDING)])
    a_group(coll, gid="grp_1", expires_ms=NOW - 10)
    a_group(coll, gid="grp_2", expires_ms=NOW - 20)
    a_group(coll, gid="grp_3", expires_ms=NOW + 10)
    a_group(coll, gid="grp_4", expires_ms=NOW - 30, state="FORMED")
    found = [d["_id"] for d in coll.find({"state": "OPEN", "expires_ms": {"$lte": NOW}})
             .sort("expires_ms", ASCENDING).limit(10)]
    assert found == ["grp_2", "grp_1"]
    closes = []
    for paid in (1, 1, 2):  # three replicas; one read a stale paid count
        closes.append(coll.update_one({"_id": "grp_1", "merchant_id": "mch_a", "state": "OPEN", "paid": paid},
                                      add_to_update({"$set": {"state": "FAILED", "failed_reason": "GROUP_EXPIRED"}},
                                                    Event(f"evt_x{len(closes)}", "siyu.order.group.failed", b"x")))
                      .modified_count)
    assert closes == [1, 0, 0]
    doc = coll.find_one({"_id": "grp_1"})
    assert doc["state"] == "FAILED" and sum(1 for e in doc["outbox"] if e.startswith("evt_x")) == 1


def test_joinable_groups_of_an_activity_and_groups_by_ids(coll):
    coll.create_index([("merchant_id", ASCENDING), ("activity_id", ASCENDING), ("state", ASCENDING),
                       ("expires_ms", ASCENDING)])
    a_group(coll, gid="grp_1", expires_ms=NOW + 50)
    a_group(coll, gid="grp_2", expires_ms=NOW + 20)
    a_group(coll, gid="grp_3", expires_ms=NOW - 1)
    a_group(coll, gid="grp_4", expires_ms=NOW + 30, state="FORMED")
    a_group(coll, gid="grp_5", expires_ms=NOW + 30, activity_id="gba_2")
    found = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "activity_id": "gba_1", "state": "OPEN",
                                          "expires_ms": {"$gt": NOW}}).sort("expires_ms", ASCENDING).limit(10)]
    assert found == ["grp_2", "grp_1"]
    among = {d["_id"] for d in coll.find({"merchant_id": "mch_a", "_id": {"$in": ["grp_1", "grp_4", "grp_x"]}})}
    assert among == {"grp_1", "grp_4"}
    assert list(coll.find({"merchant_id": "mch_b", "_id": {"$in": ["grp_1"]}})) == []


def test_tickets_of_a_member_newest_first(coll):
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)])
    for oid, mid in [("ord_1", "mem_a"), ("ord_3", "mem_a"), ("ord_2", "mem_a"), ("ord_4", "mem_b")]:
        coll.insert_one({"_id": oid, "merchant_id": "mch_a", "member_id": mid, "group_id": f"grp_{oid}",
                         "leader": 0})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "ord_1", "merchant_id": "mch_a", "member_id": "mem_a", "group_id": "grp_x"})
    found = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "member_id": "mem_a"})
             .sort("_id", DESCENDING).limit(2)]
    assert found == ["ord_3", "ord_2"]


def test_activities_are_one_per_key_paged_newest_first_and_their_terms_replaced_whole(coll):
    coll.create_index([("merchant_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True)
    coll.create_index([("merchant_id", ASCENDING), ("state", ASCENDING), ("ends_ms", ASCENDING)])
    terms = {"title": "t", "skus": [{"sku_id": "sku_1", "group_price": 600, "pool_id": "fls_1"}], "group_size": 2,
             "allow_coupons": 0}
    for aid, key, state, ends in [("gba_1", "k1", "ACTIVE", NOW + 10), ("gba_2", "k2", "ENDED", NOW + 10),
                                  ("gba_3", "k3", "ACTIVE", NOW - 10), ("gba_4", "k4", "ACTIVE", NOW + 10)]:
        coll.insert_one({"_id": aid, "merchant_id": "mch_a", "idempotency_key": key, "state": state, "ends_ms": ends,
                         "terms": terms, "version": 1})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "gba_9", "merchant_id": "mch_a", "idempotency_key": "k1", "state": "ACTIVE"})
    on = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "state": "ACTIVE", "ends_ms": {"$gt": NOW}})
          .sort("_id", DESCENDING).limit(10)]
    assert on == ["gba_4", "gba_1"]
    page = [d["_id"] for d in coll.find({"merchant_id": "mch_a", "_id": {"$lt": "gba_4"}})
            .sort("_id", DESCENDING).limit(2)]
    assert page == ["gba_3", "gba_2"]
    changed = {**terms, "title": "t2", "allow_coupons": 1}
    assert coll.update_one({"_id": "gba_1", "merchant_id": "mch_a", "version": 1},
                           {"$set": {"terms": changed, "state": "ENDED"}, "$inc": {"version": 1}}).modified_count == 1
    assert coll.update_one({"_id": "gba_1", "merchant_id": "mch_a", "version": 1},
                           {"$set": {"state": "ACTIVE"}, "$inc": {"version": 1}}).modified_count == 0
    doc = coll.find_one({"_id": "gba_1"})
    assert doc["terms"] == changed and doc["terms"]["skus"][0]["group_price"] == 600 and doc["version"] == 2
