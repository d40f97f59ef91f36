"""One test per query/update shape the repositories use. Expectations follow MongoDB's
documented semantics; a failure here means the store diverges and the shape must not be
used until it is fixed or replaced."""
from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta, timezone

import mongoengine as me
import pytest
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from siyu_kit.events import outbox
from siyu_kit.ids import new_id
from tests.conformance.conftest import ALIAS
from tests.support import new_merchant_id


class UniqueCode(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    code = me.StringField(required=True)
    meta = {"collection": "conf_unique_code", "db_alias": ALIAS,
            "indexes": [{"fields": ["merchant_id", "code"], "unique": True}]}


class SparseKey(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    idempotency_key = me.StringField()
    meta = {"collection": "conf_sparse_key", "db_alias": ALIAS,
            "indexes": [{"fields": ["merchant_id", "idempotency_key"], "unique": True, "sparse": True}]}


class Tagged(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    title = me.StringField()
    tags = me.ListField(me.StringField())
    meta = {"collection": "conf_tagged", "db_alias": ALIAS, "indexes": ["merchant_id", "tags"]}


def _ids(cursor) -> list[str]:
    return [d["_id"] for d in cursor]


def _names(found) -> list[str]:
    """Sorted short names of documents whose _id is "<merchant>:<name>"."""
    return sorted((d if isinstance(d, str) else d["_id"]).split(":", 1)[1] for d in found)


# ---- identity and indexes ---------------------------------------------------------


def test_insert_one_then_find_one_by_string_id(coll):
    merchant = new_merchant_id()
    pid = new_id("prd")
    result = coll.insert_one({"_id": pid, "merchant_id": merchant, "title": "茶", "price": 1999})
    assert result.inserted_id == pid
    found = coll.find_one({"_id": pid, "merchant_id": merchant})
    assert found == {"_id": pid, "merchant_id": merchant, "title": "茶", "price": 1999}
    assert coll.find_one({"_id": pid, "merchant_id": new_merchant_id()}) is None
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": pid, "merchant_id": merchant})


def test_unique_compound_index_rejects_a_second_insert(db):
    UniqueCode.ensure_indexes()
    merchant = new_merchant_id()
    UniqueCode(id=new_id("prd"), merchant_id=merchant, code="TEA-1").save(force_insert=True)
    coll = UniqueCode._get_collection()
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": new_id("prd"), "merchant_id": merchant, "code": "TEA-1"})
    with pytest.raises(me.NotUniqueError):
        UniqueCode(id=new_id("prd"), merchant_id=merchant, code="TEA-1").save(force_insert=True)
    # The same code under another merchant, or another code, is fine.
    UniqueCode(id=new_id("prd"), merchant_id=new_merchant_id(), code="TEA-1").save(force_insert=True)
    UniqueCode(id=new_id("prd"), merchant_id=merchant, code="TEA-2").save(force_insert=True)
    assert coll.count_documents({"merchant_id": merchant}) == 2


def test_sparse_unique_index_allows_many_documents_without_the_field(db):
    SparseKey.ensure_indexes()
    coll = SparseKey._get_collection()
    merchant = new_merchant_id()
    for _ in range(3):
        coll.insert_one({"_id": new_id("ord"), "merchant_id": merchant})
    coll.insert_one({"_id": new_id("ord"), "merchant_id": merchant, "idempotency_key": "k1"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": new_id("ord"), "merchant_id": merchant, "idempotency_key": "k1"})
    coll.insert_one({"_id": new_id("ord"), "merchant_id": new_merchant_id(), "idempotency_key": "k1"})
    assert coll.count_documents({"merchant_id": merchant}) == 4


# ---- counters ---------------------------------------------------------------------


def test_conditional_counter_gte_inc_matches_only_while_enough(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "sku_1", "merchant_id": merchant, "available": 5, "reserved": 0})

    def reserve(n):
        return coll.update_one({"_id": "sku_1", "merchant_id": merchant, "available": {"$gte": n}},
                               {"$inc": {"available": -n, "reserved": n}})

    first = reserve(3)
    assert (first.matched_count, first.modified_count) == (1, 1)
    too_many = reserve(3)
    assert (too_many.matched_count, too_many.modified_count) == (0, 0)
    exact = reserve(2)
    assert (exact.matched_count, exact.modified_count) == (1, 1)
    assert reserve(1).matched_count == 0
    doc = coll.find_one({"_id": "sku_1"})
    assert (doc["available"], doc["reserved"]) == (0, 5)
    # Releasing is the mirror image, guarded by what is reserved.
    release = coll.update_one({"_id": "sku_1", "merchant_id": merchant, "reserved": {"$gte": 4}},
                              {"$inc": {"available": 4, "reserved": -4}})
    assert release.modified_count == 1
    doc = coll.find_one({"_id": "sku_1"})
    assert (doc["available"], doc["reserved"]) == (4, 1)


def test_conditional_counter_concurrent_threads_modify_exactly_the_available_units(coll):
    merchant = new_merchant_id()
    units, buyers = 7, 24
    coll.insert_one({"_id": "sku_hot", "merchant_id": merchant, "available": units, "reserved": 0})
    start = threading.Barrier(buyers)
    won: list[int] = []
    lock = threading.Lock()

    def buy():
        start.wait()
        result = coll.update_one({"_id": "sku_hot", "merchant_id": merchant, "available": {"$gte": 1}},
                                 {"$inc": {"available": -1, "reserved": 1}})
        with lock:
            won.append(result.modified_count)

    threads = [threading.Thread(target=buy) for _ in range(buyers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(won) == buyers
    assert sum(won) == units
    doc = coll.find_one({"_id": "sku_hot"})
    assert (doc["available"], doc["reserved"]) == (0, units)


def test_upsert_inc_creates_then_adds_to_counters(coll):
    merchant = new_merchant_id()
    key = {"_id": f"{merchant}:2024-06-01", "merchant_id": merchant}
    first = coll.update_one(key, {"$inc": {"orders": 1, "amount": 1999}}, upsert=True)
    assert first.upserted_id == key["_id"] and first.matched_count == 0
    second = coll.update_one(key, {"$inc": {"orders": 1, "amount": 500}}, upsert=True)
    assert second.upserted_id is None and second.modified_count == 1
    # Equality fields of the filter are copied into the inserted document.
    assert coll.find_one({"_id": key["_id"]}) == {**key, "orders": 2, "amount": 2499}


def test_upsert_set_on_insert_does_not_overwrite_on_the_second_upsert(coll):
    merchant = new_merchant_id()
    key = {"_id": "mem_1", "merchant_id": merchant}
    coll.update_one(key, {"$setOnInsert": {"level": "SILVER", "points": 0}, "$set": {"nickname": "a"}}, upsert=True)
    second = coll.update_one(key, {"$setOnInsert": {"level": "GOLD", "points": 100}, "$set": {"nickname": "b"}},
                             upsert=True)
    assert second.upserted_id is None and second.matched_count == 1
    assert coll.find_one({"_id": "mem_1"}) == {**key, "level": "SILVER", "points": 0, "nickname": "b"}


def test_upsert_guarded_by_a_seen_event_key_applies_each_event_once(coll):
    merchant = new_merchant_id()
    key = f"{merchant}:mem_1"

    def apply(eid: str, points: int) -> bool:
        try:
            result = coll.update_one({"_id": key, "merchant_id": merchant, f"seen.{eid}": {"$exists": False}},
                                     {"$set": {f"seen.{eid}": 1}, "$inc": {"points": points}}, upsert=True)
        except DuplicateKeyError:
            return False  # the document exists and has seen this event
        return result.upserted_id is not None or result.modified_count == 1

    e1, e2 = new_id("evt"), new_id("evt")
    assert apply(e1, 10) is True
    assert apply(e1, 10) is False
    assert apply(e2, 5) is True
    assert apply(e2, 5) is False
    assert apply(e1, 10) is False
    doc = coll.find_one({"_id": key})
    assert doc["points"] == 15
    assert doc["seen"] == {e1: 1, e2: 1}


# ---- map keys, outbox, flags ------------------------------------------------------


def test_map_key_guard_set_if_absent_then_unset_if_equal_are_idempotent(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "sku_1", "merchant_id": merchant, "holds": {}})
    hold = "res_01"

    def put(q):
        return coll.update_one({"_id": "sku_1", "merchant_id": merchant, f"holds.{hold}": {"$exists": False}},
                               {"$set": {f"holds.{hold}": q}}).modified_count

    def take(q):
        return coll.update_one({"_id": "sku_1", "merchant_id": merchant, f"holds.{hold}": q},
                               {"$unset": {f"holds.{hold}": ""}}).modified_count

    assert put(3) == 1
    assert put(3) == 0
    assert put(9) == 0
    assert coll.find_one({"_id": "sku_1"})["holds"] == {hold: 3}
    assert take(2) == 0  # another quantity is not this hold
    assert take(3) == 1
    assert take(3) == 0
    assert coll.find_one({"_id": "sku_1"})["holds"] == {}
    assert put(4) == 1  # absent again: may be set again


def test_dotted_set_and_unset_into_the_outbox_map(coll):
    merchant = new_merchant_id()
    e1, e2, e3 = (outbox.Event(new_id("evt"), "siyu.order.order.placed", bytes([0, 1, 255, i])) for i in range(3))
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "version": 1, **outbox.for_insert(e1)})
    update = outbox.add_to_update({"$set": {"state": "PAID"}, "$inc": {"version": 1}}, e2, e3)
    assert coll.update_one({"_id": "ord_1", "merchant_id": merchant, "version": 1}, update).modified_count == 1
    doc = coll.find_one({"_id": "ord_1"})
    assert set(doc["outbox"]) == {e1.event_id, e2.event_id, e3.event_id}
    assert bytes(doc["outbox"][e3.event_id]["data"]) == e3.data
    assert doc["outbox"][e2.event_id]["subject"] == e2.subject
    assert (doc["version"], doc["state"], doc["outbox_pending"], doc["outbox_seq"]) == (2, "PAID", 1, 2)
    coll.update_one({"_id": "ord_1"}, {"$unset": {f"outbox.{e1.event_id}": ""}})
    assert set(coll.find_one({"_id": "ord_1"})["outbox"]) == {e2.event_id, e3.event_id}


def test_unset_several_dotted_keys_at_once(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "outbox": {"a": {"s": 1}, "b": {"s": 2}, "c": {"s": 3}}})
    result = coll.update_one({"_id": "ord_1", "merchant_id": merchant},
                             {"$unset": {"outbox.a": "", "outbox.c": "", "outbox.missing": ""}})
    assert result.modified_count == 1
    assert coll.find_one({"_id": "ord_1"})["outbox"] == {"b": {"s": 2}}


def test_ordered_bulk_of_unsets_and_seq_guarded_clears_applies_each_in_order(coll):
    """The relay's clear: one ordered bulk write of per-document unsets and clears, each
    clear conditional on the write counter the relay read."""
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"o{i}", "merchant_id": merchant, "outbox": {"a": {"s": i}, "b": {"s": i}},
                       "outbox_pending": 1, "outbox_seq": 1} for i in range(3)])
    # o2 received another event after the relay read it: its clear must not match.
    coll.update_one({"_id": "o2"}, {"$set": {"outbox.c": {"s": 9}}, "$inc": {"outbox_seq": 1}})
    ops = []
    for i in range(3):
        ops.append(UpdateOne({"_id": f"o{i}"}, {"$unset": {"outbox.a": "", "outbox.b": ""}}))
        ops.append(UpdateOne({"_id": f"o{i}", "outbox_seq": 1}, {"$set": {"outbox_pending": 0}}))
    result = coll.bulk_write(ops, ordered=True)
    assert (result.matched_count, result.modified_count) == (5, 5)
    docs = {d["_id"]: d for d in coll.find({"merchant_id": merchant})}
    assert [docs[f"o{i}"]["outbox"] for i in range(3)] == [{}, {}, {"c": {"s": 9}}]
    assert [docs[f"o{i}"]["outbox_pending"] for i in range(3)] == [0, 0, 1]
    assert sorted(_ids(coll.find({"outbox_pending": 1}))) == ["o2"]


def test_int_flag_query_outbox_pending_equals_1(coll):
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"o{i}", "merchant_id": merchant, "outbox_pending": i % 2} for i in range(6)])
    assert sorted(_ids(coll.find({"outbox_pending": 1}))) == ["o1", "o3", "o5"]
    coll.update_one({"_id": "o3"}, {"$set": {"outbox_pending": 0}})
    coll.update_one({"_id": "o0"}, {"$set": {"outbox_pending": 1}})
    assert sorted(_ids(coll.find({"outbox_pending": 1}))) == ["o0", "o1", "o5"]
    flag = coll.find_one({"_id": "o0"})["outbox_pending"]
    assert flag == 1 and type(flag) is int


def test_find_int_flag_with_projection_and_limit(coll):
    """The relay's read: pending documents, only the outbox fields, a batch at a time."""
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"o{i}", "merchant_id": merchant, "title": "x", "outbox_pending": 1,
                       "outbox_seq": i, "outbox": {f"e{i}": {"subject": "s", "data": b"d"}}} for i in range(5)])
    docs = list(coll.find({"outbox_pending": 1}, {"outbox": 1, "outbox_seq": 1}).limit(3))
    assert len(docs) == 3
    for doc in docs:
        assert set(doc) == {"_id", "outbox", "outbox_seq"}
    # Clear pending only if no write added events since the read.
    assert coll.update_one({"_id": "o2", "outbox_seq": 2}, {"$set": {"outbox_pending": 0}}).modified_count == 1
    assert coll.update_one({"_id": "o3", "outbox_seq": 2}, {"$set": {"outbox_pending": 0}}).matched_count == 0
    assert coll.count_documents({"outbox_pending": 1}) == 4


# ---- compare-and-set and state transitions ---------------------------------------


def test_compare_and_set_on_version_stale_writer_matches_nothing(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "version": 1, "note": ""})
    seen_a = coll.find_one({"_id": "ord_1"})["version"]
    seen_b = coll.find_one({"_id": "ord_1"})["version"]
    a = coll.update_one({"_id": "ord_1", "merchant_id": merchant, "version": seen_a},
                        {"$set": {"note": "a"}, "$inc": {"version": 1}})
    b = coll.update_one({"_id": "ord_1", "merchant_id": merchant, "version": seen_b},
                        {"$set": {"note": "b"}, "$inc": {"version": 1}})
    assert (a.matched_count, b.matched_count) == (1, 0)
    assert coll.find_one({"_id": "ord_1"}) == {"_id": "ord_1", "merchant_id": merchant, "version": 2, "note": "a"}


def test_find_one_and_update_returns_the_document_after_a_state_conditioned_change(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "ord_1", "merchant_id": merchant, "state": "PENDING_PAYMENT", "version": 1})
    after = coll.find_one_and_update(
        {"_id": "ord_1", "merchant_id": merchant, "state": "PENDING_PAYMENT"},
        {"$set": {"state": "PAID"}, "$inc": {"version": 1}}, return_document=ReturnDocument.AFTER)
    assert after == {"_id": "ord_1", "merchant_id": merchant, "state": "PAID", "version": 2}
    again = coll.find_one_and_update(
        {"_id": "ord_1", "merchant_id": merchant, "state": "PENDING_PAYMENT"},
        {"$set": {"state": "PAID"}, "$inc": {"version": 1}}, return_document=ReturnDocument.AFTER)
    assert again is None
    assert coll.find_one({"_id": "ord_1"})["version"] == 2


# ---- reads ------------------------------------------------------------------------


def test_find_date_range_lte_gt_with_state_equality(coll):
    merchant = new_merchant_id()
    now = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    rows = [("r1", "HELD", -120), ("r2", "HELD", -1), ("r3", "HELD", 0), ("r4", "HELD", 60),
            ("r5", "COMMITTED", -60), ("r6", "HELD", -3600)]
    coll.insert_many([{"_id": rid, "merchant_id": merchant, "state": state, "expires_at": now + timedelta(seconds=s)}
                      for rid, state, s in rows])
    coll.insert_one({"_id": "other", "merchant_id": new_merchant_id(), "state": "HELD", "expires_at": now})
    due = coll.find({"merchant_id": merchant, "state": "HELD", "expires_at": {"$lte": now}})
    assert sorted(_ids(due)) == ["r1", "r2", "r3", "r6"]
    window = coll.find({"merchant_id": merchant, "state": "HELD",
                        "expires_at": {"$gt": now - timedelta(minutes=5), "$lte": now}})
    assert sorted(_ids(window)) == ["r1", "r2", "r3"]
    later = coll.find({"merchant_id": merchant, "expires_at": {"$gt": now}})
    assert _ids(later) == ["r4"]
    back = coll.find_one({"_id": "r4"})["expires_at"]
    assert back == now + timedelta(seconds=60) and back.tzinfo is not None


def test_sort_by_id_descending_with_limit_and_lt_cursor_pagination(coll):
    merchant = new_merchant_id()
    made = [new_id("ord") for _ in range(11)]
    coll.insert_many([{"_id": i, "merchant_id": merchant} for i in made])
    coll.insert_one({"_id": new_id("ord"), "merchant_id": new_merchant_id()})
    pages, cursor = [], None
    while True:
        query = {"merchant_id": merchant}
        if cursor:
            query["_id"] = {"$lt": cursor}
        page = _ids(coll.find(query).sort("_id", DESCENDING).limit(4))
        if not page:
            break
        pages.append(page)
        cursor = page[-1]
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [i for p in pages for i in p] == sorted(made, reverse=True)


def test_array_membership_in_and_all_on_an_indexed_array(db):
    Tagged.ensure_indexes()
    coll = Tagged._get_collection()
    merchant, other = new_merchant_id(), new_merchant_id()
    coll.insert_many([
        {"_id": f"{merchant}:p1", "merchant_id": merchant, "tags": ["tea", "gift"]},
        {"_id": f"{merchant}:p2", "merchant_id": merchant, "tags": ["tea"]},
        {"_id": f"{merchant}:p3", "merchant_id": merchant, "tags": ["gift", "new"]},
        {"_id": f"{merchant}:p4", "merchant_id": merchant, "tags": []},
        {"_id": f"{other}:p5", "merchant_id": other, "tags": ["tea", "gift"]},
    ])
    assert _names(coll.find({"merchant_id": merchant, "tags": {"$in": ["tea"]}})) == ["p1", "p2"]
    assert _names(coll.find({"merchant_id": merchant, "tags": {"$in": ["new", "tea"]}})) == ["p1", "p2", "p3"]
    assert _names(coll.find({"merchant_id": merchant, "tags": {"$all": ["gift", "tea"]}})) == ["p1"]
    assert _names(d.id for d in Tagged.objects(merchant_id=merchant, tags__in=["gift"])) == ["p1", "p3"]
    assert _names(d.id for d in Tagged.objects(merchant_id=merchant, tags__all=["gift", "new"])) == ["p3"]


def test_raw_regex_with_case_insensitive_option(db):
    Tagged.ensure_indexes()
    coll = Tagged._get_collection()
    merchant, other = new_merchant_id(), new_merchant_id()
    coll.insert_many([
        {"_id": f"{merchant}:p1", "merchant_id": merchant, "title": "Oolong Tea 乌龙茶"},
        {"_id": f"{merchant}:p2", "merchant_id": merchant, "title": "green TEA"},
        {"_id": f"{merchant}:p3", "merchant_id": merchant, "title": "Coffee 1.5kg"},
        {"_id": f"{merchant}:p4", "merchant_id": merchant, "title": "Coffee 105kg"},
        {"_id": f"{other}:p5", "merchant_id": other, "title": "tea"},
    ])
    by_tea = Tagged.objects(merchant_id=merchant, __raw__={"title": {"$regex": "tea", "$options": "i"}})
    assert _names(d.id for d in by_tea) == ["p1", "p2"]
    assert _names(coll.find({"merchant_id": merchant, "title": {"$regex": "乌龙", "$options": "i"}})) == ["p1"]
    # A keyword is escaped before it becomes a pattern: "1.5" must not match "105".
    literal = {"$regex": re.escape("1.5"), "$options": "i"}
    assert _names(coll.find({"merchant_id": merchant, "title": literal})) == ["p3"]
    anchored = {"$regex": "^coffee", "$options": "i"}
    assert _names(coll.find({"merchant_id": merchant, "title": anchored})) == ["p3", "p4"]


def test_count_documents_with_a_filter(coll):
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"o{i}", "merchant_id": merchant, "state": "PAID" if i < 3 else "CLOSED",
                       "amount": i * 100} for i in range(7)])
    coll.insert_one({"_id": "x", "merchant_id": new_merchant_id(), "state": "PAID", "amount": 0})
    assert coll.count_documents({"merchant_id": merchant}) == 7
    assert coll.count_documents({"merchant_id": merchant, "state": "PAID"}) == 3
    assert coll.count_documents({"merchant_id": merchant, "state": "PAID", "amount": {"$gte": 100}}) == 2
    assert coll.count_documents({"merchant_id": merchant, "state": "REFUNDED"}) == 0


def test_ensure_indexes_is_safe_to_repeat(db):
    for _ in range(2):
        UniqueCode.ensure_indexes()
    info = UniqueCode._get_collection().index_information()
    unique = [spec for spec in info.values() if spec.get("key") == [("merchant_id", ASCENDING), ("code", ASCENDING)]]
    assert len(unique) == 1 and unique[0].get("unique") is True


def test_time_set_later_as_epoch_ms_is_found_by_range(coll):
    """Times written by $set are stored as integer epoch milliseconds (siyu_kit.protos.epoch_ms)
    so that range queries on them compare numbers."""
    coll.insert_many([{"_id": "r1", "state": "COMMITTED", "settled": 0, "updated_ms": 0},
                      {"_id": "r2", "state": "COMMITTED", "settled": 0, "updated_ms": 0}])
    coll.update_one({"_id": "r1"}, {"$set": {"updated_ms": 1_700_000_000_000}})
    coll.update_one({"_id": "r2"}, {"$set": {"updated_ms": 1_700_000_060_000}})
    found = coll.find({"state": {"$in": ["COMMITTED", "RELEASED"]}, "settled": 0,
                       "updated_ms": {"$lte": 1_700_000_030_000}})
    assert _ids(found) == ["r1"]


def test_whole_array_of_subdocuments_replaced_by_set_under_a_version_check(coll):
    """Products keep their SKUs as an array of sub-documents, replaced whole (never $push)."""
    coll.insert_one({"_id": "p1", "merchant_id": "m", "version": 1,
                     "skus": [{"sku_id": "s1", "code": "red", "attributes": {"颜色": "红"}, "price": 100}]})
    skus = [{"sku_id": "s1", "code": "red", "attributes": {"颜色": "红"}, "price": 120},
            {"sku_id": "s2", "code": "blue", "attributes": {"颜色": "蓝"}, "price": 130}]
    done = coll.update_one({"_id": "p1", "merchant_id": "m", "version": 1},
                           {"$set": {"skus": skus, "tags": ["a", "b"]}, "$inc": {"version": 1}})
    stale = coll.update_one({"_id": "p1", "merchant_id": "m", "version": 1},
                            {"$set": {"skus": []}, "$inc": {"version": 1}})
    assert (done.modified_count, stale.modified_count) == (1, 0)
    doc = coll.find_one({"_id": "p1"})
    assert doc["skus"] == skus and doc["tags"] == ["a", "b"] and doc["version"] == 2


def test_find_by_id_in_a_list_within_a_merchant(coll):
    coll.insert_many([{"_id": f"s{i}", "merchant_id": "m" if i < 3 else "other"} for i in range(5)])
    found = coll.find({"_id": {"$in": ["s0", "s2", "s3", "missing"]}, "merchant_id": "m"})
    assert sorted(_ids(found)) == ["s0", "s2"]


def test_exclusion_projection_leaves_out_only_the_named_fields(coll):
    coll.insert_one({"_id": "o1", "state": "PAID", "outbox": {"evt_1": {"subject": "x"}}, "search_terms": ["ab"]})
    doc = coll.find_one({"_id": "o1"}, {"outbox": 0, "search_terms": 0})
    assert doc == {"_id": "o1", "state": "PAID"}


def test_exists_true_on_a_map_key(coll):
    coll.insert_many([{"_id": "s1", "merchant_id": "m", "holds": {"rsv_1": 2}},
                      {"_id": "s2", "merchant_id": "m", "holds": {}}])
    assert _ids(coll.find({"merchant_id": "m", "holds.rsv_1": {"$exists": True}}, {"_id": 1})) == ["s1"]


def test_scalar_in_with_date_range_sorted_ascending_with_limit(coll):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    coll.insert_many([{"_id": f"o{i}", "state": "PENDING_PAYMENT" if i % 2 == 0 else "PAID",
                       "expires_at": start + timedelta(minutes=10 - i)} for i in range(6)])
    due = coll.find({"state": {"$in": ["PENDING_PAYMENT"]}, "expires_at": {"$lte": start + timedelta(minutes=9)}})
    assert _ids(due.sort("expires_at", ASCENDING).limit(2)) == ["o4", "o2"]


def test_set_a_nested_document_and_inc_beside_it(coll):
    coll.insert_one({"_id": "pay1", "state": "PENDING", "version": 1, "failures": 0})
    at = datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    coll.update_one({"_id": "pay1", "state": "PENDING", "version": 1},
                    {"$set": {"last_failure": {"provider_txn_id": "t1", "at": at}},
                     "$inc": {"version": 1, "failures": 1}})
    doc = coll.find_one({"_id": "pay1"})
    assert doc["last_failure"] == {"provider_txn_id": "t1", "at": at}
    assert (doc["version"], doc["failures"]) == (2, 1)


def test_mongoengine_insert_of_a_duplicate_unique_key_raises_not_unique(db):
    merchant = new_merchant_id()
    UniqueCode(id=new_id("per"), merchant_id=merchant, code="xiaomei").save(force_insert=True)
    with pytest.raises(me.NotUniqueError):
        UniqueCode(id=new_id("per"), merchant_id=merchant, code="xiaomei").save(force_insert=True)


# ---- catalog: categories, product listing, stock adjustments ----------------------


class ListedProduct(me.Document):
    """The product listing's indexes: sort keys behind merchant and status, the category path."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    status = me.StringField()
    min_price = me.IntField()
    sales = me.IntField()
    category_path = me.ListField(me.StringField())
    meta = {"collection": "conf_listed_product", "db_alias": ALIAS,
            "indexes": [{"fields": ["merchant_id", "status", "min_price"]},
                        {"fields": ["merchant_id", "status", "sales"]},
                        {"fields": ["merchant_id", "category_path"]}]}


class SiblingName(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    parent_id = me.StringField()
    name = me.StringField()
    meta = {"collection": "conf_sibling_name", "db_alias": ALIAS,
            "indexes": [{"fields": ["merchant_id", "parent_id", "name"], "unique": True}]}


def _keyset_pages(coll, query: dict, key: str, direction: int, size: int) -> list[list[str]]:
    """Pages of a (key, _id) keyset listing: each page continues strictly after the last."""
    pages, last = [], None
    while True:
        q = dict(query)
        if last is not None:
            op = "$gt" if direction == ASCENDING else "$lt"
            q["$or"] = [{key: {op: last[key]}}, {key: last[key], "_id": {op: last["_id"]}}]
        page = list(coll.find(q, {"search_terms": 0}).sort([(key, direction), ("_id", direction)]).limit(size))
        if not page:
            return pages
        pages.append([d["_id"].split(":", 1)[1] for d in page])
        last = page[-1]


def test_keyset_pagination_on_a_sort_key_with_id_tiebreak_in_both_directions(db):
    ListedProduct.ensure_indexes()
    coll = ListedProduct._get_collection()
    merchant = new_merchant_id()
    prices = [300, 100, 200, 100, 300, 100, 50]
    coll.insert_many([{"_id": f"{merchant}:p{i}", "merchant_id": merchant, "status": "ON_SHELF", "min_price": p,
                       "sales": 0} for i, p in enumerate(prices)])
    coll.insert_one({"_id": f"{merchant}:px", "merchant_id": merchant, "status": "DRAFT", "min_price": 1, "sales": 0})
    on_shelf = {"merchant_id": merchant, "status": "ON_SHELF"}
    assert _keyset_pages(coll, on_shelf, "min_price", ASCENDING, 3) == [["p6", "p1", "p3"], ["p5", "p2", "p0"], ["p4"]]
    assert _keyset_pages(coll, on_shelf, "min_price", DESCENDING, 3) == [["p4", "p0", "p2"], ["p5", "p3", "p1"], ["p6"]]


def test_keyset_on_a_counter_changed_by_inc_sorts_by_the_new_value(db):
    ListedProduct.ensure_indexes()
    coll = ListedProduct._get_collection()
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"{merchant}:p{i}", "merchant_id": merchant, "status": "ON_SHELF", "sales": 0}
                      for i in range(4)])
    coll.update_one({"_id": f"{merchant}:p1"}, {"$inc": {"sales": 5}})
    coll.update_one({"_id": f"{merchant}:p2"}, {"$inc": {"sales": 7}})
    coll.update_one({"_id": f"{merchant}:p2"}, {"$inc": {"sales": -2}})
    on_shelf = {"merchant_id": merchant, "status": "ON_SHELF"}
    assert _keyset_pages(coll, on_shelf, "sales", DESCENDING, 2) == [["p2", "p1"], ["p3", "p0"]]


def test_newest_first_by_id_with_lt_cursor_and_every_listing_filter_together(db):
    """Keyword terms ($all), category path ($in), tag ($in) and a price range on one query."""
    ListedProduct.ensure_indexes()
    coll = ListedProduct._get_collection()
    merchant = new_merchant_id()

    def product(name, price, path, tags, terms):
        return {"_id": f"{merchant}:{name}", "merchant_id": merchant, "status": "ON_SHELF", "min_price": price,
                "category_path": path, "tags": tags, "search_terms": terms}

    coll.insert_many([
        product("p1", 100, ["cat_a"], ["new"], ["连衣", "衣裙"]),
        product("p2", 200, ["cat_a", "cat_b"], ["new", "sale"], ["连衣", "衣裙", "碎花"]),
        product("p3", 300, ["cat_a", "cat_b", "cat_c"], ["new"], ["连衣", "衣裙"]),
        product("p4", 400, ["cat_d"], ["new"], ["连衣", "衣裙"]),
        product("p5", 250, ["cat_a", "cat_b"], ["old"], ["连衣", "衣裙"]),
        product("p6", 500, ["cat_a", "cat_b"], ["new"], ["大衣"]),
    ])
    query = {"merchant_id": merchant, "status": "ON_SHELF", "search_terms": {"$all": ["连衣", "衣裙"]},
             "category_path": {"$in": ["cat_b"]}, "tags": {"$in": ["new"]}, "min_price": {"$gte": 150, "$lte": 300}}
    assert _names(coll.find(query)) == ["p2", "p3"]
    assert _names(coll.find({"merchant_id": merchant, "category_path": {"$in": ["cat_a"]}})) == \
        ["p1", "p2", "p3", "p5", "p6"]
    assert _names(coll.find({"merchant_id": merchant, "min_price": {"$gte": 400}})) == ["p4", "p6"]
    first = list(coll.find({"merchant_id": merchant, "category_path": {"$in": ["cat_b"]}}).sort("_id", DESCENDING)
                 .limit(2))
    rest = coll.find({"merchant_id": merchant, "category_path": {"$in": ["cat_b"]}, "_id": {"$lt": first[-1]["_id"]}})
    assert [d["_id"].split(":")[1] for d in first] == ["p6", "p5"]
    assert _names(rest) == ["p2", "p3"]


def test_unique_sibling_name_rejects_a_second_insert_and_is_found_by_name(db):
    """The index rejects a duplicate insert only: the embedded server lets an update create a
    duplicate (docs/storage.md), so a rename first looks the name up among the siblings."""
    SiblingName.ensure_indexes()
    coll = SiblingName._get_collection()
    merchant = new_merchant_id()
    coll.insert_one({"_id": "cat_1", "merchant_id": merchant, "parent_id": "", "name": "女装"})
    coll.insert_one({"_id": "cat_2", "merchant_id": merchant, "parent_id": "", "name": "男装"})
    coll.insert_one({"_id": "cat_3", "merchant_id": merchant, "parent_id": "cat_1", "name": "男装"})
    coll.insert_one({"_id": "cat_4", "merchant_id": new_merchant_id(), "parent_id": "", "name": "女装"})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "cat_5", "merchant_id": merchant, "parent_id": "", "name": "女装"})
    taken = coll.find_one({"merchant_id": merchant, "parent_id": "", "name": "女装", "_id": {"$ne": "cat_2"}},
                          {"_id": 1})
    assert taken == {"_id": "cat_1"}
    assert coll.find_one({"merchant_id": merchant, "parent_id": "", "name": "童装"}) is None
    assert coll.update_one({"_id": "cat_2", "merchant_id": merchant}, {"$set": {"name": "童装"}}).modified_count == 1
    assert sorted(d["name"] for d in coll.find({"merchant_id": merchant, "parent_id": ""})) == ["女装", "童装"]


def test_guarded_inc_with_a_marker_returns_the_document_after_or_none(coll):
    """A stock adjustment: one write moves the counters, sets the idempotency marker and a
    pending ledger entry (a key holding ':'), and returns the new levels."""
    merchant = new_merchant_id()
    coll.insert_one({"_id": "sku_1", "merchant_id": merchant, "product_id": "prd_1", "on_hand": 5, "reserved": 1,
                     "available": 4, "adjustments": {}, "pending": {}, "pending_count": 0})

    def adjust(key, delta):
        guard = {"_id": "sku_1", "merchant_id": merchant, f"adjustments.{key}": {"$exists": False}}
        if delta < 0:
            guard["available"] = {"$gte": -delta}
        entry = {"kind": "ADJUST", "quantity": delta, "reference": key, "at_ms": 1_700_000_000_000}
        return coll.find_one_and_update(
            guard, {"$inc": {"on_hand": delta, "available": delta, "pending_count": 1},
                    "$set": {f"adjustments.{key}": delta, f"pending.ADJUST:{key}": entry}},
            projection={"on_hand": 1, "reserved": 1, "available": 1, "product_id": 1},
            return_document=ReturnDocument.AFTER)

    assert adjust("k1", 3) == {"_id": "sku_1", "product_id": "prd_1", "on_hand": 8, "reserved": 1, "available": 7}
    assert adjust("k1", 3) is None
    assert adjust("k2", -8) is None
    assert adjust("k2", -7)["available"] == 0
    doc = coll.find_one({"_id": "sku_1"})
    assert doc["adjustments"] == {"k1": 3, "k2": -7} and doc["pending_count"] == 2
    assert doc["pending"]["ADJUST:k2"]["quantity"] == -7
    assert _ids(coll.find({"pending_count": {"$gt": 0}}, {"_id": 1})) == ["sku_1"]
    assert _ids(coll.find({"merchant_id": merchant, "pending.ADJUST:k1": {"$exists": True}}, {"_id": 1})) == ["sku_1"]
    acked = coll.update_one({"_id": "sku_1", "pending.ADJUST:k1": {"$exists": True}},
                            {"$unset": {"pending.ADJUST:k1": ""}, "$inc": {"pending_count": -1}})
    again = coll.update_one({"_id": "sku_1", "pending.ADJUST:k1": {"$exists": True}},
                            {"$unset": {"pending.ADJUST:k1": ""}, "$inc": {"pending_count": -1}})
    assert (acked.modified_count, again.modified_count) == (1, 0)
    doc = coll.find_one({"_id": "sku_1"})
    assert set(doc["pending"]) == {"ADJUST:k2"} and doc["pending_count"] == 1


def test_skus_with_nested_price_lists_round_trip_through_a_whole_array_set(coll):
    coll.insert_one({"_id": "p1", "merchant_id": "m", "version": 1, "skus": []})
    skus = [{"sku_id": "s1", "list_price": 1000, "tier_prices": [{"tier": "GOLD", "price": 900},
                                                                 {"tier": "SILVER", "price": 950}],
             "limited_time_price": {"price": 800, "starts_at_ms": 1_700_000_000_000, "ends_at_ms": 1_700_000_360_000}},
            {"sku_id": "s2", "list_price": 500, "tier_prices": [], "limited_time_price": None}]
    coll.update_one({"_id": "p1", "version": 1}, {"$set": {"skus": skus}, "$inc": {"version": 1}})
    assert coll.find_one({"_id": "p1"})["skus"] == skus


# ---- flash sales: the pool, the per-member quota, the SKU's pool hold ---------------


def _sale(merchant: str, now: datetime, **fields) -> dict:
    return {"_id": new_id("fls"), "merchant_id": merchant, "pooled": 1, "units": 3, "available": 3,
            "reserved": 0, "sold": 0, "returned": 0, "holds": {}, "per_member_limit": 1,
            "starts_at": now - timedelta(minutes=1), "ends_at": now + timedelta(minutes=10), **fields}


def _take(coll, sale: dict, rid: str, q: int, now: datetime):
    """The pool's hot-path write: inside the window, enough left, this reservation not yet."""
    return coll.find_one_and_update(
        {"_id": sale["_id"], "merchant_id": sale["merchant_id"], "pooled": 1, "available": {"$gte": q},
         "starts_at": {"$lte": now}, "ends_at": {"$gt": now}, f"holds.{rid}": {"$exists": False}},
        {"$inc": {"available": -q, "reserved": q},
         "$set": {f"holds.{rid}": {"q": q, "member_id": "mem_1", "exp_ms": 1_700_000_000_000}}},
        projection={"holds": 0}, return_document=ReturnDocument.AFTER)


def test_pool_take_in_window_returns_the_sale_without_holds(coll):
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    sale = _sale(new_merchant_id(), now)
    coll.insert_one(sale)
    after = _take(coll, sale, "rsv_a", 2, now)
    assert "holds" not in after
    assert (after["available"], after["reserved"], after["per_member_limit"]) == (1, 2, 1)
    assert _take(coll, sale, "rsv_a", 1, now) is None  # the same reservation again
    assert _take(coll, sale, "rsv_b", 2, now) is None  # not enough left
    assert _take(coll, sale, "rsv_b", 1, now - timedelta(minutes=2)) is None  # not started
    assert _take(coll, sale, "rsv_b", 1, now + timedelta(minutes=10)) is None  # ended
    assert _take(coll, sale, "rsv_b", 1, now)["available"] == 0
    doc = coll.find_one({"_id": sale["_id"]})
    assert doc["holds"] == {"rsv_a": {"q": 2, "member_id": "mem_1", "exp_ms": 1_700_000_000_000},
                            "rsv_b": {"q": 1, "member_id": "mem_1", "exp_ms": 1_700_000_000_000}}
    assert type(doc["holds"]["rsv_a"]["q"]) is int


def test_pool_take_by_concurrent_threads_takes_exactly_the_units(coll):
    now = datetime.now(timezone.utc)
    units, buyers = 5, 24
    sale = _sale(new_merchant_id(), now, units=units, available=units)
    coll.insert_one(sale)
    start = threading.Barrier(buyers)
    won: list[str] = []
    lock = threading.Lock()

    def buy(i: int):
        start.wait()
        if _take(coll, sale, f"rsv_{i}", 1, now) is not None:
            with lock:
                won.append(f"rsv_{i}")

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(buyers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    doc = coll.find_one({"_id": sale["_id"]})
    assert len(won) == units and sorted(doc["holds"]) == sorted(won)
    assert (doc["available"], doc["reserved"]) == (0, units)


def test_pool_hold_unset_with_counters_only_while_present(coll):
    now = datetime.now(timezone.utc)
    sale = _sale(new_merchant_id(), now)
    coll.insert_one(sale)
    _take(coll, sale, "rsv_a", 2, now)

    def settle(q: int, inc: dict):
        return coll.update_one(
            {"_id": sale["_id"], "merchant_id": sale["merchant_id"], "holds.rsv_a.q": q},
            {"$unset": {"holds.rsv_a": ""}, "$inc": inc, "$set": {"unsynced": 1}}).modified_count

    assert settle(1, {"reserved": -1, "sold": 1}) == 0  # another quantity is not this hold
    assert settle(2, {"reserved": -2, "sold": 2}) == 1
    assert settle(2, {"reserved": -2, "available": 2}) == 0
    doc = coll.find_one({"_id": sale["_id"]})
    assert (doc["available"], doc["reserved"], doc["sold"], doc["holds"], doc["unsynced"]) == (1, 0, 2, {}, 1)


def test_find_by_a_map_key_present_projecting_whole_maps(coll):
    """A refused take that looks unexplained asks whether its own hold exists, reading the
    holds map whole (an inclusion projection of one map key, `holds.rsv_a: 1`, comes back
    under the flat key "holds.rsv_a" on the embedded server)."""
    now = datetime.now(timezone.utc)
    sale = _sale(new_merchant_id(), now)
    coll.insert_one(sale)
    _take(coll, sale, "rsv_a", 1, now)
    _take(coll, sale, "rsv_b", 2, now)
    found = coll.find_one({"_id": sale["_id"], "merchant_id": sale["merchant_id"], "holds.rsv_b": {"$exists": True}},
                          {"holds": 1, "available": 1})
    assert set(found) == {"_id", "holds", "available"} and found["available"] == 0
    assert found["holds"]["rsv_b"] == {"q": 2, "member_id": "mem_1", "exp_ms": 1_700_000_000_000}
    assert coll.find_one({"_id": sale["_id"], "holds.rsv_zz": {"$exists": True}}, {"holds": 1}) is None
    coll.update_one({"_id": sale["_id"]}, {"$set": {"pool_sync.fls_1": {"sold": 0, "returned": 0}}})
    assert coll.find_one({"_id": sale["_id"]}, {"pool_sync": 1}) == {
        "_id": sale["_id"], "pool_sync": {"fls_1": {"sold": 0, "returned": 0}}}


def test_conditional_upsert_inserts_then_guards_and_a_failed_guard_is_a_duplicate_key(coll):
    """The per-member quota: used <= limit - q. A document that exists but fails the
    guard makes the upsert try to insert the same _id: DuplicateKeyError."""
    merchant = new_merchant_id()
    key = f"fls_1:mem_{new_id('m')[-6:]}"

    def use(rid: str, q: int, limit: int):
        return coll.update_one(
            {"_id": key, "merchant_id": merchant, "used": {"$lte": limit - q}, f"holds.{rid}": {"$exists": False}},
            {"$inc": {"used": q}, "$set": {f"holds.{rid}": q}}, upsert=True)

    first = use("rsv_a", 1, 2)
    assert first.upserted_id == key
    assert coll.find_one({"_id": key}) == {"_id": key, "merchant_id": merchant, "used": 1, "holds": {"rsv_a": 1}}
    second = use("rsv_b", 1, 2)
    assert second.upserted_id is None and second.modified_count == 1
    with pytest.raises(DuplicateKeyError):
        use("rsv_c", 1, 2)  # over the limit
    with pytest.raises(DuplicateKeyError):
        use("rsv_b", 0, 5)  # this reservation is already counted
    # Without upsert, the same guards simply match nothing.
    plain = coll.update_one({"_id": key, "merchant_id": merchant, "used": {"$lte": 1}}, {"$inc": {"used": 1}})
    assert plain.matched_count == 0
    # Giving back: only while the reservation is counted.
    back = {"_id": key, "merchant_id": merchant, "holds.rsv_a": 1}
    assert coll.update_one(back, {"$inc": {"used": -1}, "$unset": {"holds.rsv_a": ""}}).modified_count == 1
    assert coll.update_one(back, {"$inc": {"used": -1}, "$unset": {"holds.rsv_a": ""}}).modified_count == 0
    assert coll.find_one({"_id": key})["used"] == 1
    assert use("rsv_c", 1, 2).modified_count == 1


def test_concurrent_conditional_upserts_of_one_member_count_exactly_the_limit(coll):
    merchant = new_merchant_id()
    key, limit, tries = "fls_1:mem_1", 3, 16
    start = threading.Barrier(tries)
    outcomes: list[str] = []
    lock = threading.Lock()

    def use(i: int):
        query = {"_id": key, "merchant_id": merchant, "used": {"$lte": limit - 1}, f"holds.r{i}": {"$exists": False}}
        update = {"$inc": {"used": 1}, "$set": {f"holds.r{i}": 1}}
        start.wait()
        try:
            result = coll.update_one(query, update, upsert=True)
            ok = result.upserted_id is not None or result.modified_count == 1
        except DuplicateKeyError:
            # Lost the race to create it, or over the limit: once more without upsert.
            ok = coll.update_one(query, update).modified_count == 1
        with lock:
            outcomes.append("ok" if ok else "limit")

    threads = [threading.Thread(target=use, args=(i,)) for i in range(tries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    doc = coll.find_one({"_id": key})
    assert outcomes.count("ok") == limit and len(outcomes) == tries
    assert doc["used"] == limit and len(doc["holds"]) == limit


def test_nested_counter_compare_and_set_with_inc_on_a_map_key(coll):
    """A SKU's stock follows its flash pool: applied counters under pool_sync.<sale>, the
    pool's units under holds.<sale>."""
    merchant = new_merchant_id()
    coll.insert_one({"_id": "sku_1", "merchant_id": merchant, "on_hand": 10, "reserved": 1, "available": 9,
                     "holds": {"rsv_x": 1}})
    out = coll.update_one(
        {"_id": "sku_1", "merchant_id": merchant, "available": {"$gte": 4}, "holds.fls_1": {"$exists": False}},
        {"$inc": {"available": -4, "reserved": 4},
         "$set": {"holds.fls_1": 4, "pool_sync.fls_1": {"sold": 0, "returned": 0, "prev_sold": 0, "prev_returned": 0}}})
    assert out.modified_count == 1

    def sync(seen: dict, sold: int, returned: int):
        ds, dr = sold - seen["sold"], returned - seen["returned"]
        return coll.update_one(
            {"_id": "sku_1", "merchant_id": merchant, "pool_sync.fls_1.sold": seen["sold"],
             "pool_sync.fls_1.returned": seen["returned"]},
            {"$inc": {"on_hand": -ds, "reserved": -ds - dr, "available": dr, "holds.fls_1": -ds - dr},
             "$set": {"pool_sync.fls_1": {"sold": sold, "returned": returned, "prev_sold": seen["sold"],
                                          "prev_returned": seen["returned"]}}}).modified_count

    assert sync({"sold": 0, "returned": 0}, 2, 0) == 1
    assert sync({"sold": 0, "returned": 0}, 3, 0) == 0  # stale: someone synced first
    assert sync({"sold": 2, "returned": 0}, 3, 1) == 1
    doc = coll.find_one({"_id": "sku_1", "merchant_id": merchant})
    assert (doc["on_hand"], doc["reserved"], doc["available"]) == (7, 1, 6)
    assert doc["holds"] == {"rsv_x": 1, "fls_1": 0}
    assert doc["pool_sync"]["fls_1"] == {"sold": 3, "returned": 1, "prev_sold": 2, "prev_returned": 0}


def test_keyset_page_on_a_composite_string_key(coll):
    """Flash sales soonest first. The order (starts_at, _id) is one string written at insert,
    `sort_key`, so a page continues with one `$gt` (an `$or` of two branches with a date
    range loses the other conditions on the embedded server)."""
    merchant = new_merchant_id()
    t0 = datetime(2026, 5, 1, tzinfo=timezone.utc)

    def row(hours: int, **fields) -> dict:
        sale_id, starts_at = new_id("fls"), t0 + timedelta(hours=hours)
        return {"_id": sale_id, "merchant_id": merchant, "pooled": 1, "live_session_id": "", "starts_at": starts_at,
                "ends_at": t0 + timedelta(days=1), "sort_key": f"{int(starts_at.timestamp() * 1000):013d}:{sale_id}",
                **fields}

    rows = [row(h) for h in (3, 1, 2, 1, 3, 0, 2)]
    live = row(1, live_session_id="liv_1")
    others = [row(3, ends_at=t0), row(3, pooled=0), row(3, merchant_id=new_merchant_id())]
    coll.insert_many(rows + [live] + others)
    want = [r["_id"] for r in sorted(rows + [live], key=lambda r: (r["starts_at"], r["_id"]))]
    base = {"merchant_id": merchant, "pooled": 1, "ends_at": {"$gt": t0 + timedelta(hours=1)}}
    got, after = [], ""
    while True:
        query = {**base, "sort_key": {"$gt": after}} if after else base
        page = list(coll.find(query, {"sort_key": 1}).sort("sort_key", ASCENDING).limit(3))
        if not page:
            break
        got += [d["_id"] for d in page]
        after = page[-1]["sort_key"]
    assert got == want
    in_room = coll.find({**base, "live_session_id": "liv_1"}).sort("sort_key", ASCENDING)
    assert [d["_id"] for d in in_room] == [live["_id"]]


def test_delete_one_only_while_a_flag_is_unset(coll):
    coll.insert_many([{"_id": "fls_a", "merchant_id": "m", "pooled": 0}, {"_id": "fls_b", "merchant_id": "m", "pooled": 1}])
    assert coll.delete_one({"_id": "fls_a", "merchant_id": "m", "pooled": 0}).deleted_count == 1
    assert coll.delete_one({"_id": "fls_b", "merchant_id": "m", "pooled": 0}).deleted_count == 0
    assert [d["_id"] for d in coll.find({"merchant_id": "m"})] == ["fls_b"]


def test_scan_by_insert_time_range_and_int_counters_across_merchants(coll):
    now = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    coll.insert_many([
        {"_id": "a", "merchant_id": "m1", "pooled": 1, "ends_at": now - timedelta(minutes=1), "available": 2},
        {"_id": "b", "merchant_id": "m2", "pooled": 1, "ends_at": now - timedelta(minutes=1), "available": 0},
        {"_id": "c", "merchant_id": "m2", "pooled": 1, "ends_at": now + timedelta(minutes=1), "available": 5},
        {"_id": "d", "merchant_id": "m1", "pooled": 0, "ends_at": now - timedelta(hours=1), "available": 5}])
    coll.update_one({"_id": "b"}, {"$inc": {"available": 1}})
    ended = coll.find({"pooled": 1, "ends_at": {"$lte": now}, "available": {"$gt": 0}})
    assert sorted(d["_id"] for d in ended) == ["a", "b"]


# ---- order lifecycle: fulfilment, refunds, payment ledger, staff search -------------


class LifecycleOrder(me.Document):
    """The orders collection's indexes that staff search, auto-confirm and refunds use."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField()
    state = me.StringField()
    created_ms = me.IntField()
    attribution = me.DictField()
    auto_confirm_ms = me.IntField()
    meta = {"collection": "conf_lifecycle_order", "db_alias": ALIAS, "strict": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}, {"fields": ["merchant_id", "state"]},
                        {"fields": ["merchant_id", "created_ms"]}, {"fields": ["merchant_id", "attribution.channel"]},
                        {"fields": ["state", "auto_confirm_ms"]}]}


def test_staff_search_combines_state_epoch_ms_range_nested_channel_member_and_id_keyset(db):
    LifecycleOrder.ensure_indexes()
    coll = LifecycleOrder._get_collection()
    merchant = new_merchant_id()
    start = 1_772_323_200_000  # creation times 7 ms apart: finer than a second
    coll.insert_many([{"_id": f"{merchant}:o{i}", "merchant_id": merchant, "member_id": f"mem{i % 2}",
                       "state": "PAID" if i % 3 else "SHIPPED", "created_ms": start + 7 * i,
                       "attribution": {"channel": "LIVE" if i < 6 else "H5"}} for i in range(10)])
    coll.insert_one({"_id": "other:o1", "merchant_id": "other", "member_id": "mem1", "state": "PAID",
                     "created_ms": start, "attribution": {"channel": "LIVE"}})

    def search(**extra) -> list[str]:
        return _names(coll.find({"merchant_id": merchant, **extra}, {"outbox": 0}).sort("_id", DESCENDING).limit(50))

    assert search(state="PAID") == ["o1", "o2", "o4", "o5", "o7", "o8"]
    assert search(created_ms={"$gte": start + 14, "$lt": start + 35}) == ["o2", "o3", "o4"]
    assert search(**{"attribution.channel": "H5"}) == ["o6", "o7", "o8", "o9"]
    assert search(member_id="mem1", state="PAID", **{"attribution.channel": "LIVE"}) == ["o1", "o5"]
    page = _ids(coll.find({"merchant_id": merchant, "_id": {"$lt": f"{merchant}:o5"}}).sort("_id", DESCENDING)
                .limit(3))
    assert [i.split(":", 1)[1] for i in page] == ["o4", "o3", "o2"]


def test_auto_confirm_scan_state_in_and_epoch_ms_set_later_sorted_with_limit(db):
    LifecycleOrder.ensure_indexes()
    coll = LifecycleOrder._get_collection()
    merchant = new_merchant_id()
    coll.insert_many([{"_id": f"{merchant}:o{i}", "merchant_id": merchant, "state": "PAID"} for i in range(5)])
    for i, state in enumerate(["SHIPPED", "DELIVERED", "SHIPPED", "COMPLETED", "SHIPPED"]):
        coll.update_one({"_id": f"{merchant}:o{i}", "state": "PAID"},
                        {"$set": {"state": state, "auto_confirm_ms": 1_800_000_000_000 - i * 1000}})
    due = coll.find({"merchant_id": merchant, "state": {"$in": ["SHIPPED", "DELIVERED"]},
                     "auto_confirm_ms": {"$lte": 1_799_999_999_000}}).sort("auto_confirm_ms", ASCENDING).limit(2)
    assert [d["_id"].split(":", 1)[1] for d in due] == ["o4", "o2"]


def test_refund_applied_to_an_order_in_one_versioned_write(coll):
    """Lines replaced whole, a nested record (with an array of sub-documents) set under a
    map key, the refunded total raised by $inc from absent, and an event in the outbox."""
    coll.insert_one({"_id": "o1", "merchant_id": "m", "version": 3, "lines": [
        {"line_id": "l1", "quantity": 2, "paid_amount": 100}, {"line_id": "l2", "quantity": 1, "paid_amount": 50}]})
    lines = [{"line_id": "l1", "quantity": 2, "paid_amount": 100, "refunded_quantity": 1, "refunded_amount": 50},
             {"line_id": "l2", "quantity": 1, "paid_amount": 50}]
    record = {"amount": 50, "shipping_fee_refund": 0, "restock": 1,
              "lines": [{"line_id": "l1", "sku_id": "s1", "quantity": 1, "amount": 50}]}
    event = outbox.Event("evt_1", "siyu.order.order.refunded", b"\x01\x02")

    def apply(version: int, refund_id: str):
        update = outbox.add_to_update({"$set": {"lines": lines, f"applied_refunds.{refund_id}": record},
                                       "$inc": {"version": 1, "refunded_amount": 50}}, event)
        return coll.update_one({"_id": "o1", "merchant_id": "m", "version": version}, update).modified_count

    assert apply(3, "rfd_1") == 1
    assert apply(3, "rfd_2") == 0  # planned against a stale version: nothing
    doc = coll.find_one({"_id": "o1"})
    assert doc["lines"] == lines and doc["applied_refunds"] == {"rfd_1": record}
    assert (doc["version"], doc["refunded_amount"], doc["outbox_pending"]) == (4, 50, 1)
    assert doc["outbox"]["evt_1"]["data"] == b"\x01\x02"


def test_count_by_state_in_and_list_by_order_oldest_first(coll):
    coll.insert_many([{"_id": f"rfd_{i}", "merchant_id": "m", "order_id": "o1" if i < 4 else "o2",
                       "state": ["REQUESTED", "REJECTED", "APPROVED", "REFUNDED", "REQUESTED"][i]} for i in range(5)])
    assert coll.count_documents({"merchant_id": "m", "order_id": "o1", "state": {"$in": ["REQUESTED", "APPROVED"]}}) == 2
    assert _ids(coll.find({"merchant_id": "m", "order_id": "o1"}).sort("_id", ASCENDING)) == \
        ["rfd_0", "rfd_1", "rfd_2", "rfd_3"]
    assert _ids(coll.find({"merchant_id": "m", "state": "REQUESTED", "_id": {"$lt": "rfd_4"}})
                .sort("_id", DESCENDING).limit(5)) == ["rfd_0"]


def test_ledger_entry_with_a_deterministic_id_is_stored_once_and_read_in_time_order(coll):
    at = datetime(2026, 3, 1, tzinfo=timezone.utc)
    coll.insert_one({"_id": "REFUND:rfd_1", "merchant_id": "m", "order_id": "o1", "amount": 50,
                     "at": at + timedelta(milliseconds=2)})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "REFUND:rfd_1", "merchant_id": "m", "order_id": "o1", "amount": 50, "at": at})
    coll.insert_one({"_id": "ORDER_PAYMENT:pay_1", "merchant_id": "m", "order_id": "o1", "amount": 100, "at": at})
    found = list(coll.find({"merchant_id": "m", "order_id": "o1"}).sort("at", ASCENDING))
    assert [(d["_id"], d["amount"]) for d in found] == [("ORDER_PAYMENT:pay_1", 100), ("REFUND:rfd_1", 50)]


# ---- order checkout: carts, order settings ------------------------------------------


def _cart_collection(db, name: str):
    coll = db[f"c_{name}_{new_id('c').lower()[-10:]}"]
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)], unique=True)
    return coll


def test_cart_items_replaced_whole_by_merchant_member_and_version(db):
    """A cart is found by (merchant, member), not _id; its items (int flags inside) are
    replaced whole, the last one removed leaves an empty array."""
    coll = _cart_collection(db, "cart_cas")
    coll.insert_one({"_id": "crt_1", "merchant_id": "m", "member_id": "mem_1", "version": 1, "updated_ms": 1,
                     "items": [{"sku_id": "s1", "quantity": 1, "selected": 1, "added_ms": 1}]})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "crt_2", "merchant_id": "m", "member_id": "mem_1", "version": 1, "items": []})
    items = [{"sku_id": "s2", "quantity": 3, "selected": 1, "added_ms": 2},
             {"sku_id": "s1", "quantity": 1, "selected": 0, "added_ms": 1}]
    query = {"merchant_id": "m", "member_id": "mem_1", "version": 1}
    done = coll.update_one(query, {"$set": {"items": items, "updated_ms": 2}, "$inc": {"version": 1}})
    stale = coll.update_one(query, {"$set": {"items": [], "updated_ms": 3}, "$inc": {"version": 1}})
    assert (done.modified_count, stale.modified_count) == (1, 0)
    doc = coll.find_one({"merchant_id": "m", "member_id": "mem_1"})
    assert (doc["items"], doc["version"], doc["updated_ms"]) == (items, 2, 2)
    coll.update_one({"merchant_id": "m", "member_id": "mem_1", "version": 2},
                    {"$set": {"items": [], "updated_ms": 4}, "$inc": {"version": 1}})
    assert coll.find_one({"merchant_id": "m", "member_id": "mem_1"})["items"] == []
    assert coll.find_one({"merchant_id": "m", "member_id": "mem_2"}) is None


def test_cart_concurrent_writers_retrying_on_the_version_lose_no_item(db):
    """Twenty writers add one item each: create-if-absent under the unique index, then
    read-modify-compare-and-set, retried when another writer came first."""
    coll = _cart_collection(db, "cart_race")

    def add(sku: str) -> None:
        while True:
            doc = coll.find_one({"merchant_id": "m", "member_id": "mem_1"})
            item = {"sku_id": sku, "quantity": 1, "selected": 1, "added_ms": 1}
            if doc is None:
                try:
                    coll.insert_one({"_id": new_id("crt"), "merchant_id": "m", "member_id": "mem_1", "version": 1,
                                     "items": [item]})
                    return
                except DuplicateKeyError:
                    continue
            if coll.update_one({"merchant_id": "m", "member_id": "mem_1", "version": doc["version"]},
                               {"$set": {"items": [item, *doc["items"]]}, "$inc": {"version": 1}}).modified_count:
                return

    threads = [threading.Thread(target=add, args=(f"s{i}",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    doc = coll.find_one({"merchant_id": "m", "member_id": "mem_1"})
    assert sorted(i["sku_id"] for i in doc["items"]) == sorted(f"s{i}" for i in range(20))
    assert doc["version"] == 20


def test_order_settings_created_once_then_changed_by_merchant_and_version(db):
    coll = db[f"c_order_settings_{new_id('c').lower()[-10:]}"]
    coll.create_index("merchant_id", unique=True)
    coll.insert_one({"_id": "ost_1", "merchant_id": "m", "unpaid_expiry_s": 60, "threshold_reductions": [],
                     "version": 1})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "ost_2", "merchant_id": "m", "version": 1})
    rules = [{"threshold": 10_000, "reduction": 1_000}, {"threshold": 30_000, "reduction": 5_000}]
    query = {"merchant_id": "m", "version": 1}
    update = {"$set": {"unpaid_expiry_s": 5, "threshold_reductions": rules, "shipping_fee": 0, "updated_ms": 7},
              "$inc": {"version": 1}}
    assert coll.update_one(query, update).modified_count == 1
    assert coll.update_one(query, update).modified_count == 0
    doc = coll.find_one({"merchant_id": "m"})
    assert (doc["unpaid_expiry_s"], doc["threshold_reductions"], doc["shipping_fee"], doc["version"]) == \
        (5, rules, 0, 2)


# ---- staff login lock-out, refresh tokens, token versions ----------------------------


def _take_attempt(coll, cid: str, limit: int, expires_at: datetime) -> bool:
    """services.member.adapters.repositories.take_login_attempt, on this collection."""
    query = {"_id": cid, "failures": {"$lt": limit}}
    update = {"$inc": {"failures": 1}, "$setOnInsert": {"expires_at": expires_at}}
    try:
        result = coll.update_one(query, update, upsert=True)
    except DuplicateKeyError:
        result = coll.update_one(query, update)
    return result.upserted_id is not None or result.modified_count == 1


def test_window_counter_takes_up_to_the_limit_then_gives_back_above_zero(coll):
    cid = f"acct:{new_id('h').lower()}:29000000"
    expires_at = datetime(2030, 1, 1, 0, 1, tzinfo=timezone.utc)
    assert [_take_attempt(coll, cid, 3, expires_at) for _ in range(5)] == [True, True, True, False, False]
    doc = coll.find_one({"_id": cid})
    assert doc["failures"] == 3 and doc["expires_at"] == expires_at
    # Giving back frees one slot, never below zero.
    back = {"_id": cid, "failures": {"$gt": 0}}
    assert coll.update_one(back, {"$inc": {"failures": -1}}).modified_count == 1
    assert _take_attempt(coll, cid, 3, expires_at) is True
    for _ in range(5):
        coll.update_one(back, {"$inc": {"failures": -1}})
    assert coll.find_one({"_id": cid})["failures"] == 0
    # $setOnInsert left the first expiry alone.
    _take_attempt(coll, cid, 3, datetime(2031, 1, 1, tzinfo=timezone.utc))
    assert coll.find_one({"_id": cid})["expires_at"] == expires_at


def test_window_counter_concurrent_attempts_take_exactly_the_limit(coll):
    cid, limit, tries = f"addr:{new_id('h').lower()}:1", 10, 24
    expires_at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    start = threading.Barrier(tries)
    outcomes: list[bool] = []
    lock = threading.Lock()

    def attempt():
        start.wait()
        ok = _take_attempt(coll, cid, limit, expires_at)
        with lock:
            outcomes.append(ok)

    threads = [threading.Thread(target=attempt) for _ in range(tries)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count(True) == limit and len(outcomes) == tries
    assert coll.find_one({"_id": cid})["failures"] == limit


def test_ttl_index_on_an_insert_time_is_created_and_repeatable(coll):
    coll.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    coll.create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    coll.insert_one({"_id": "rft_1", "merchant_id": new_merchant_id(), "expires_at": later})
    assert coll.find_one({"_id": "rft_1"}) is not None


def test_refresh_token_state_changes_once_from_active(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "rft_1", "merchant_id": merchant, "subject_id": "stf_1", "state": "ACTIVE"})

    def end(subject: str, state: str) -> bool:
        return coll.update_one({"_id": "rft_1", "merchant_id": merchant, "subject_id": subject, "state": "ACTIVE"},
                               {"$set": {"state": state}}).modified_count == 1

    assert end("stf_other", "USED") is False
    assert end("stf_1", "USED") is True
    assert end("stf_1", "USED") is False
    assert end("stf_1", "REVOKED") is False
    assert coll.find_one({"_id": "rft_1"})["state"] == "USED"


def test_token_version_absent_then_inc_and_inclusion_projection(coll):
    merchant = new_merchant_id()
    coll.insert_one({"_id": "mem_1", "merchant_id": merchant, "nickname": "a", "outbox": {}})
    key = {"_id": "mem_1", "merchant_id": merchant}
    assert coll.find_one(key, {"token_version": 1}) == {"_id": "mem_1"}
    coll.update_one(key, {"$inc": {"token_version": 1}})
    assert coll.find_one(key, {"token_version": 1}) == {"_id": "mem_1", "token_version": 1}
    coll.update_one(key, {"$inc": {"token_version": 1}})
    found = coll.find_one(key, {"roles": 1, "disabled": 1, "token_version": 1})
    assert found == {"_id": "mem_1", "token_version": 2}
    assert coll.update_one({"_id": "mem_1", "merchant_id": new_merchant_id()},
                           {"$inc": {"token_version": 1}}).matched_count == 0


def test_expired_by_date_with_state_walked_in_id_order_after_a_gt_cursor(coll):
    # The sweeper: RESERVED past expiry, a batch per pass in _id order after the last one.
    merchant = new_merchant_id()
    now = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    rows = [("a", "RESERVED", -5), ("b", "RESERVED", 30), ("c", "COMMITTED", -5), ("d", "RESERVED", 0),
            ("e", "RESERVED", -60), ("f", "RESERVED", -1)]
    coll.insert_many([{"_id": f"{merchant}:{n}", "merchant_id": merchant, "state": state,
                       "expires_at": now + timedelta(seconds=s)} for n, state, s in rows])
    query = {"merchant_id": merchant, "state": "RESERVED", "expires_at": {"$lte": now}}
    first = list(coll.find(query).sort("_id", ASCENDING).limit(2))
    assert _names(first) == ["a", "d"]
    rest = coll.find({**query, "_id": {"$gt": first[-1]["_id"]}}).sort("_id", ASCENDING).limit(2)
    assert [d["_id"].split(":", 1)[1] for d in rest] == ["e", "f"]


def test_open_flag_with_epoch_ms_lte_oldest_first_taken_by_compare_and_set_then_closed(coll):
    # The payment reconcile job: open payments whose reconcile time has come.
    merchant = new_merchant_id()
    base = 1_800_000_000_000
    coll.insert_many([{"_id": f"{merchant}:p{i}", "merchant_id": merchant, "state": "SUCCEEDED", "open": 1,
                       "reconcile_ms": base - i * 1000} for i in range(4)])
    coll.insert_one({"_id": f"{merchant}:pending", "merchant_id": merchant, "state": "PENDING"})
    query = {"merchant_id": merchant, "open": 1, "reconcile_ms": {"$lte": base - 1000}}
    assert [d["_id"].split(":", 1)[1] for d in coll.find(query).sort("reconcile_ms", ASCENDING).limit(2)] == \
        ["p3", "p2"]
    # Taken by one run: a second run that read the same time matches nothing.
    take = {"_id": f"{merchant}:p2", "merchant_id": merchant, "open": 1, "reconcile_ms": base - 2000}
    assert coll.update_one(take, {"$set": {"reconcile_ms": base + 30_000}}).modified_count == 1
    assert coll.update_one(take, {"$set": {"reconcile_ms": base + 30_000}}).modified_count == 0
    assert coll.update_one({"_id": f"{merchant}:p3", "state": "SUCCEEDED"},
                           {"$set": {"open": 0}, "$inc": {"version": 1}}).modified_count == 1
    assert _names(coll.find(query)) == ["p1"]


# ---- member address books -----------------------------------------------------------


def test_address_book_replaced_whole_with_nested_lists_by_merchant_member_and_version(db):
    """An address book is found by (merchant, member), unique; its addresses (dicts), its
    default and its creation keys (a list of two-string lists) are replaced whole on the
    version read; a writer on a stale version changes nothing."""
    coll = _cart_collection(db, "address_book")
    address = {"address_id": "adr_1", "recipient": "张三", "phone_sealed": "v1.k1.n.b", "phone_masked": "138****8000",
               "province_code": "440000", "province_name": "广东省", "city_code": "441900", "city_name": "东莞市",
               "district_code": "441900", "district_name": "东莞市", "detail": "1 号", "created_ms": 1, "version": 1}
    coll.insert_one({"_id": "adb_1", "merchant_id": "m", "member_id": "mem_1", "version": 1, "updated_ms": 1,
                     "addresses": [address], "default_id": "adr_1", "keys": [["k1", "adr_1"]]})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "adb_2", "merchant_id": "m", "member_id": "mem_1", "version": 1, "addresses": []})
    second = {**address, "address_id": "adr_2", "created_ms": 2}
    query = {"merchant_id": "m", "member_id": "mem_1", "version": 1}
    change = {"$set": {"addresses": [address, second], "default_id": "adr_2",
                       "keys": [["k1", "adr_1"], ["k2", "adr_2"]], "updated_ms": 2}, "$inc": {"version": 1}}
    done = coll.update_one(query, change)
    stale = coll.update_one(query, {"$set": {"addresses": [], "default_id": "", "keys": []}, "$inc": {"version": 1}})
    assert (done.modified_count, stale.modified_count) == (1, 0)
    doc = coll.find_one({"merchant_id": "m", "member_id": "mem_1"})
    assert (doc["addresses"], doc["default_id"], doc["keys"], doc["version"]) == (
        [address, second], "adr_2", [["k1", "adr_1"], ["k2", "adr_2"]], 2)
    assert coll.find_one({"merchant_id": "other", "member_id": "mem_1"}) is None


# ---- the member's order tabs --------------------------------------------------------


class TabbedOrder(me.Document):
    """The order document's indexes the tabs of a member's order list use."""
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    state = me.StringField(required=True)
    meta = {"collection": "conf_tabbed_order", "db_alias": ALIAS, "strict": False,
            "indexes": [{"fields": ["merchant_id", "member_id"]}, {"fields": ["merchant_id", "member_id", "state"]},
                        {"fields": ["merchant_id", "state"]}]}


class MemberRefund(me.Document):
    id = me.StringField(primary_key=True)
    merchant_id = me.StringField(required=True)
    member_id = me.StringField(required=True)
    order_id = me.StringField(required=True)
    state = me.StringField(required=True)
    meta = {"collection": "conf_member_refund", "db_alias": ALIAS, "strict": False,
            "indexes": [{"fields": ["merchant_id", "state"]}, {"fields": ["merchant_id", "member_id"]}]}


def test_order_tabs_state_in_per_member_counted_and_paged_newest_first_by_id(db):
    TabbedOrder.ensure_indexes()
    c = TabbedOrder._get_collection()
    merchant, member, other = new_merchant_id(), new_id("mem"), new_id("mem")
    states = ["PENDING_PAYMENT", "PAID", "SHIPPED", "DELIVERED", "COMPLETED", "CANCELLED"] * 2
    ids = [new_id("ord") for _ in states]
    c.insert_many([{"_id": i, "merchant_id": merchant, "member_id": member, "state": s, "outbox": {}}
                   for i, s in zip(ids, states)]
                  + [{"_id": new_id("ord"), "merchant_id": merchant, "member_id": other, "state": "SHIPPED"},
                     {"_id": new_id("ord"), "merchant_id": new_merchant_id(), "member_id": member, "state": "PAID"}])
    shipped = sorted((i for i, s in zip(ids, states) if s in ("SHIPPED", "DELIVERED")), reverse=True)
    query = {"merchant_id": merchant, "member_id": member, "state": {"$in": ["SHIPPED", "DELIVERED"]}}
    assert _ids(c.find(query, {"outbox": 0}).sort("_id", DESCENDING).limit(3)) == shipped[:3]
    assert _ids(c.find({**query, "_id": {"$lt": shipped[2]}}, {"outbox": 0}).sort("_id", DESCENDING).limit(3)) == \
        shipped[3:]
    counts = {tab: c.count_documents({"merchant_id": merchant, "member_id": member, "state": {"$in": tab_states}})
              for tab, tab_states in {"UNPAID": ["PENDING_PAYMENT"], "TO_SHIP": ["PAID"],
                                      "SHIPPED": ["SHIPPED", "DELIVERED"], "COMPLETED": ["COMPLETED"]}.items()}
    assert counts == {"UNPAID": 2, "TO_SHIP": 2, "SHIPPED": 4, "COMPLETED": 2}
    among = c.find({"_id": {"$in": [ids[0], ids[4], "ord_missing"]}, "merchant_id": merchant, "member_id": member},
                   {"outbox": 0})
    assert sorted(_ids(among)) == sorted([ids[0], ids[4]])
    c.delete_many({"merchant_id": merchant})


def test_order_ids_of_a_members_refunds_by_inclusion_projection_of_one_field(db):
    MemberRefund.ensure_indexes()
    c = MemberRefund._get_collection()
    merchant, member = new_merchant_id(), new_id("mem")
    c.insert_many([{"_id": new_id("rfd"), "merchant_id": merchant, "member_id": member, "order_id": o, "state": s}
                   for o, s in (("ord_a", "REQUESTED"), ("ord_a", "REJECTED"), ("ord_b", "REFUNDED"))]
                  + [{"_id": new_id("rfd"), "merchant_id": merchant, "member_id": new_id("mem"), "order_id": "ord_c",
                      "state": "REQUESTED"}])
    docs = list(c.find({"merchant_id": merchant, "member_id": member}, {"order_id": 1}))
    assert sorted(d["order_id"] for d in docs) == ["ord_a", "ord_a", "ord_b"]
    assert all(set(d) == {"_id", "order_id"} for d in docs)
    c.delete_many({"merchant_id": merchant})


# ---- freight templates ----------------------------------------------------------------


def test_freight_template_one_per_merchant_replaced_whole_on_its_version(db):
    """A freight template's _id is its merchant: a second insert is refused; it is read by
    merchant without its outbox, and replaced whole (a nested rule dict, a list of rule
    dicts, lists of strings) on the version read; a stale writer changes nothing."""
    coll = _cart_collection(db, "freight_template")
    rule = {"name": "广东省", "basis": "UNITS", "first": 1, "first_fee": 800, "additional": 1, "additional_fee": 200,
            "regions": ["440000"]}
    default = {**rule, "name": "default", "regions": []}
    coll.insert_one({"_id": "mch_1", "merchant_id": "mch_1", "default_rule": default, "rules": [rule],
                     "excluded_regions": ["540000"], "free_over": 0, "free_shipping_tiers": [], "version": 1,
                     "outbox": {}})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "mch_1", "merchant_id": "mch_1", "version": 1})
    query = {"_id": "mch_1", "merchant_id": "mch_1", "version": 1}
    change = {"$set": {"default_rule": {**default, "first_fee": 1000}, "rules": [rule, {**rule, "regions": ["650000"]}],
                       "excluded_regions": [], "free_over": 9900, "free_shipping_tiers": ["GOLD"]},
              "$inc": {"version": 1}}
    done = coll.update_one(query, change)
    stale = coll.update_one(query, {"$set": {"rules": []}, "$inc": {"version": 1}})
    assert (done.modified_count, stale.modified_count) == (1, 0)
    doc = coll.find_one({"merchant_id": "mch_1"}, {"outbox": 0})
    assert "outbox" not in doc
    assert (doc["default_rule"]["first_fee"], [r["regions"] for r in doc["rules"]], doc["excluded_regions"],
            doc["free_over"], doc["free_shipping_tiers"], doc["version"]) == (
        1000, [["440000"], ["650000"]], [], 9900, ["GOLD"], 2)
    assert coll.find_one({"merchant_id": "mch_2"}, {"outbox": 0}) is None


# ---- WeChat Pay (services/order/adapters/payments.py, wechat_pay_store.py) ---------------


def test_partial_index_range_scan_of_pending_payments_due_for_a_query(coll):
    coll.create_index([("query_ms", ASCENDING)], partialFilterExpression={"query_ms": {"$gt": 0}})
    merchant = new_merchant_id()
    coll.insert_many([
        {"_id": "pay_a", "merchant_id": merchant, "state": "PENDING", "query_ms": 200},
        {"_id": "pay_b", "merchant_id": merchant, "state": "PENDING", "query_ms": 100},
        {"_id": "pay_c", "merchant_id": merchant, "state": "SUCCEEDED", "query_ms": 50},
        {"_id": "pay_d", "merchant_id": merchant, "state": "PENDING", "query_ms": 0},
        {"_id": "pay_e", "merchant_id": merchant, "state": "PENDING", "query_ms": 900}])
    due = coll.find({"query_ms": {"$gt": 0, "$lte": 500}, "state": "PENDING"}).sort("query_ms", 1).limit(10)
    assert _ids(due) == ["pay_b", "pay_a"]
    # The job takes one by a compare-and-set on the time it read.
    taken = coll.update_one({"_id": "pay_b", "merchant_id": merchant, "query_ms": 100}, {"$set": {"query_ms": 700}})
    lost = coll.update_one({"_id": "pay_b", "merchant_id": merchant, "query_ms": 100}, {"$set": {"query_ms": 800}})
    assert (taken.modified_count, lost.modified_count) == (1, 0)


def test_replace_one_upsert_by_id_keeps_one_document_per_merchant_and_channel(coll):
    merchant = new_merchant_id()
    key = {"_id": f"{merchant}:MINI_PROGRAM", "merchant_id": merchant}
    coll.replace_one(key, {**key, "app_id": "wx1", "sealed": {"k": "v1"}}, upsert=True)
    coll.replace_one(key, {**key, "app_id": "wx2", "sealed": {"k": "v2"}}, upsert=True)
    assert list(coll.find({"merchant_id": merchant})) == [{**key, "app_id": "wx2", "sealed": {"k": "v2"}}]


def test_a_ttl_index_accepts_documents_and_the_insert_is_the_replay_check(coll):
    coll.create_index([("at", ASCENDING)], expireAfterSeconds=86400)
    merchant = new_merchant_id()
    now = datetime.now(timezone.utc)
    coll.insert_one({"_id": f"{merchant}:1700000000:n1", "merchant_id": merchant, "at": now})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": f"{merchant}:1700000000:n1", "merchant_id": merchant, "at": now})
    assert coll.count_documents({"merchant_id": merchant}) == 1
